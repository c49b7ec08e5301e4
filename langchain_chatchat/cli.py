"""The `chatchat` command: `serve`, `models` and `emulator`.

A bad config (invalid YAML, unknown provider, unset key, bad params, a missing model wheel)
is reported as one line naming the entry, with exit code 2 — never a traceback. `serve` checks
that the port is free before it builds any model, and prints a banner with what it serves and
where to open it before it starts listening.
"""

from __future__ import annotations

import errno
import gc
import ipaddress
import os
import socket
import threading
import typing
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import uvicorn

from langchain_chatchat import __version__
from langchain_chatchat.cli_cache import cache_app
from langchain_chatchat.server.access_log import uvicorn_log_config
from langchain_chatchat.server.app import create_app
from langchain_chatchat.server.banner import banner
from langchain_chatchat.server.config import (
    ChatchatConfig,
    ConfigError,
    ServerSettings,
    load_config,
)
from langchain_chatchat.server.defaults import CONFIG_ENV, default_config
from langchain_chatchat.server.protocol import uvicorn_options
from langchain_chatchat.server.registry import ModelRegistry
from langchain_chatchat.server.workers import serve_workers

app = typer.Typer(
    help="Serve LangChain chat and embedding models over OpenAI-compatible and LangServe APIs.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(cache_app, name="cache")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file. Default: $CHATCHAT_CONFIG, else local models plus cloud models"
        " whose keys are set.",
        show_default=False,
    ),
]


def _print_version(show: bool) -> None:
    if show:
        typer.echo(f"langchain-chatchat {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Serve LangChain chat and embedding models over OpenAI-compatible and LangServe APIs."""


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: the config's, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port (default: the config's, 20000)."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="Log level of uvicorn and of the package's loggers (default: the config's, info)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Gateway processes sharing the port (default: the config's server.workers, 1);"
            " local models then run in one model process.",
        ),
    ] = None,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run on Ray Serve (extra `ray`): entries with a `ray:` section become"
            " deployments. Starts a local Ray unless --address is given.",
        ),
    ] = False,
    lazy: Annotated[
        bool, typer.Option(help="Load local models on their first request, not at start-up.")
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(help="With --ray: the cluster to join, e.g. `auto` or ray://head:10001."),
    ] = None,
) -> None:
    """Start the server."""
    settings = _load(config)
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    workers = workers or settings.server.workers
    level = (log_level or settings.server.log_level).lower()
    if level not in typing.get_args(ServerSettings.model_fields["log_level"].annotation):
        typer.echo(f"chatchat: unknown log level {log_level!r}", err=True)
        raise typer.Exit(code=2)
    _check_port_free(host, port)
    if not settings.server.api_keys and not _is_loopback(host):
        typer.echo(
            f"chatchat: warning: serving on {host} without server.api_keys;"
            " anyone who can reach it can use it",
            err=True,
        )
    log_config = uvicorn_log_config()
    log_config["loggers"]["langchain_chatchat"]["level"] = level.upper()
    if ray:
        _serve_on_ray(config, address=address, host=host, port=port)
        return
    if workers > 1:
        try:
            serve_workers(
                settings,
                config,
                workers=workers,
                host=host,
                port=port,
                log_level=level,
                uvicorn_options={"log_config": log_config, **uvicorn_options(settings.server)},
            )
        except ConfigError as error:
            _fail(error, _config_path(config))
        return
    try:
        application = create_app(settings, lazy=lazy)
    except ConfigError as error:
        _fail(error, _config_path(config))
    # Start-up objects (models, schemas, routes) never die: freezing them keeps full collections
    # short, which cut p99 latency under load from ~95 ms to ~14-40 ms in benchmarks/gateway.py.
    gc.collect()
    gc.freeze()
    typer.echo(
        banner(application.state.registry, settings.server, _source(config), _url(host, port)),
        err=True,
    )
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=level,
        log_config=log_config,
        access_log=False,  # ours (`server.access_log`) has request ids, models and replicas
        **uvicorn_options(settings.server),
    )


@app.command()
def models(config: ConfigOption = None) -> None:
    """List the models the server would serve (each one is constructed, to check its params)."""
    try:
        registry = ModelRegistry.from_config(_load(config))
    except ConfigError as error:
        _fail(error, _config_path(config))
    table = [("NAME", "KIND", "PROVIDER", "CLASS")]
    table += [(m.name, m.kind, m.provider, type(m.model).__name__) for m in registry]
    widths = [max(len(cell) for cell in column) for column in zip(*table, strict=True)]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@app.command()
def emulator(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A provider (qwen, zhipu, deepseek, …; see --list).", show_default=False
        ),
    ] = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")
    ] = 0,
    list_: Annotated[
        bool, typer.Option("--list", help="List the providers that have an emulator.")
    ] = False,
) -> None:
    """Run a provider's emulator on 127.0.0.1 and print a config that uses it (Ctrl+C stops)."""
    from langchain_chatchat import cli_emulator  # the emulators load only for this command

    if list_:
        typer.echo("\n".join(cli_emulator.EMULATED))
        return
    if name is None:
        typer.echo(
            f"chatchat: name a provider: {', '.join(cli_emulator.EMULATED)} (or pass --list)",
            err=True,
        )
        raise typer.Exit(code=2)
    try:
        emulated = cli_emulator.resolve(name)
    except LookupError as error:
        typer.echo(f"chatchat: {error}", err=True)
        raise typer.Exit(code=2) from None
    _check_port_free("127.0.0.1", port)
    running = cli_emulator.start(emulated, port)
    typer.echo(f"{emulated.provider} emulator at {running.base_url}", err=True)
    typer.echo(
        "Any API key in the snippet below is the emulator's; save it as chatchat.yaml and run"
        " `chatchat serve --config chatchat.yaml --port 20001`:",
        err=True,
    )
    typer.echo(cli_emulator.config_snippet(emulated, running))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


def _serve_on_ray(config: Path | None, *, address: str | None, host: str, port: int) -> None:
    try:
        from langchain_chatchat.server.ray import serve_ray
    except ImportError as error:
        typer.echo(f"chatchat: --ray needs the `ray` extra ({error})", err=True)
        raise typer.Exit(code=2) from None
    try:
        serve_ray(config, address=address, host=host, port=port)
    except ConfigError as error:
        _fail(error)


def _load(path: Path | None) -> ChatchatConfig:
    try:
        return default_config() if path is None else load_config(path)
    except ConfigError as error:
        _fail(error)


def _config_path(path: Path | None) -> str | None:
    """The file the config came from, if any (errors name it)."""
    if path is not None:
        return str(path)
    return os.environ.get(CONFIG_ENV) or None


def _source(path: Path | None) -> str:
    if path is not None:
        return str(path.resolve())
    if env := os.environ.get(CONFIG_ENV):
        return f"{Path(env).resolve()} (from ${CONFIG_ENV})"
    return "default models (no --config, no $CHATCHAT_CONFIG)"


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _check_port_free(host: str, port: int) -> None:
    """Fail now, not after minutes of model loading, when `host:port` cannot be bound."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                message = f"port {port} is in use; pass --port"
            else:
                message = f"cannot listen on {host}:{port}: {error.strerror or error}"
            typer.echo(f"chatchat: {message}", err=True)
            raise typer.Exit(code=2) from None


def _fail(error: ConfigError, path: str | None = None) -> NoReturn:
    message = str(error)
    if path and not message.startswith(path):
        message = f"{path}: {message}"
    typer.echo(f"chatchat: config error: {message}", err=True)
    raise typer.Exit(code=2)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    app()
