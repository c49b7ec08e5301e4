"""The `chatchat` command: `chatchat serve` and `chatchat models`.

A bad config (invalid YAML, unknown provider, unset key, bad params) is reported as one line
naming the entry, with exit code 2 — never a traceback.
"""

from __future__ import annotations

import gc
import ipaddress
import typing
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import uvicorn

from langchain_chatchat.server.access_log import uvicorn_log_config
from langchain_chatchat.server.app import create_app
from langchain_chatchat.server.config import (
    ChatchatConfig,
    ConfigError,
    ServerSettings,
    load_config,
)
from langchain_chatchat.server.defaults import default_config
from langchain_chatchat.server.protocol import uvicorn_options
from langchain_chatchat.server.registry import ModelRegistry
from langchain_chatchat.server.workers import serve_workers

app = typer.Typer(
    help="Serve LangChain chat and embedding models over OpenAI-compatible and LangServe APIs.",
    no_args_is_help=True,
    add_completion=False,
)

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


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: the config's, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: the config's, 20000).")] = None,
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
    if not settings.server.api_keys and not _is_loopback(host):
        typer.echo(
            f"chatchat: warning: serving on {host} without server.api_keys;"
            " anyone who can reach it can use it",
            err=True,
        )
    level = (log_level or settings.server.log_level).lower()
    if level not in typing.get_args(ServerSettings.model_fields["log_level"].annotation):
        typer.echo(f"chatchat: unknown log level {log_level!r}", err=True)
        raise typer.Exit(code=2)
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
            _fail(error)
        return
    try:
        application = create_app(settings)
    except ConfigError as error:
        _fail(error)
    # Start-up objects (models, schemas, routes) never die: freezing them keeps full collections
    # short, which cut p99 latency under load from ~95 ms to ~14-40 ms in benchmarks/gateway.py.
    gc.collect()
    gc.freeze()
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
        _fail(error)
    table = [("NAME", "KIND", "PROVIDER", "CLASS")]
    table += [(m.name, m.kind, m.provider, type(m.model).__name__) for m in registry]
    widths = [max(len(cell) for cell in column) for column in zip(*table, strict=True)]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


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


def _fail(error: ConfigError) -> NoReturn:
    typer.echo(f"chatchat: config error: {error}", err=True)
    raise typer.Exit(code=2)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
