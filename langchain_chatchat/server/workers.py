"""`chatchat serve --workers N`: N gateway processes on one port, local models in one process.

One event loop saturates one core; N gateway processes (uvicorn's multi-process mode, sharing
one listening socket) use N. What must not be multiplied is multiplied never:

- Local (torch) models would load their weights once per process and fight over the same
  cores, so with N > 1 every entry with a local replica runs in ONE model process (this
  package's own app on a loopback port, behind a random key), and each gateway sees that entry
  as an OpenAI-compatible replica pointing there. Its `max_concurrency` / `max_queue` stay
  exact: they apply in that one process, whose 429s reach the client unchanged.
- Limits of API entries cannot be shared across processes without a lock on every request, so
  they are divided: each gateway gets `max_concurrency // N` per replica and `max_queue // N`.
  The server's total never exceeds the configured numbers; a `max_concurrency` below N cannot
  be divided and is a start-up error naming the entry.
- `server.max_connections` is divided the same way (uvicorn counts connections per process):
  each gateway serves `max_connections // N` at once, and a value below N is a start-up error.
- Metrics report the whole server: the parent creates a fresh private directory (mode 0700,
  removed at shutdown) for prometheus_client's multiprocess mode, passes it to the gateways
  as `PROMETHEUS_MULTIPROC_DIR`, and drops the live gauges of a gateway that died (see
  server/metrics.py). One process never uses it.

Start-up checks run once, in the parent, before any process starts: the config is validated
(every API model constructed), the port is bound (so "address in use" is one clear error),
and the model process must answer `/ready`. Each gateway rebuilds the config from the same
source (`$CHATCHAT_CONFIG` or the default, `${VAR}` expanded from its inherited environment),
so no secret is written anywhere. Stopping the parent (Ctrl-C, SIGTERM) stops the gateways,
then the model process; a model process whose parent died exits by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_chatchat.providers import get_provider
from langchain_chatchat.server.config import (
    ChatchatConfig,
    ConfigError,
    ModelConfig,
    ReplicaConfig,
    ServerSettings,
)
from langchain_chatchat.server.metrics import PUBLISH_INTERVAL, SHARED_DIR_ENV
from langchain_chatchat.server.protocol import concurrency_limit

WORKERS_ENV = "CHATCHAT_WORKERS"
"""How many gateway processes share the port (read by each gateway)."""
MODEL_URL_ENV = "CHATCHAT_MODEL_PROCESS_URL"
MODEL_KEY_ENV = "CHATCHAT_MODEL_PROCESS_KEY"
"""The model process's root URL and the random key that guards it."""
_PARENT_ENV = "CHATCHAT_MODEL_PROCESS_PARENT"
_FD_ENV = "CHATCHAT_MODEL_PROCESS_FD"
_LOCAL_PROVIDER = "local"
_READY_TIMEOUT = 600.0  # first start may convert a GGUF file


# -- splitting a config ------------------------------------------------------------------------
def is_local(entry: ModelConfig) -> bool:
    """Whether any replica of `entry` runs a model inside the serving process (torch)."""
    local = get_provider(_LOCAL_PROVIDER).name
    names = (
        [
            replica.provider or (None if replica.url else entry.provider)
            for replica in entry.replicas
        ]
        if entry.replicas
        else [entry.provider]
    )
    return any(name is not None and get_provider(name).name == local for name in names)


def model_process_config(config: ChatchatConfig, key: str) -> ChatchatConfig | None:
    """The local entries alone, behind `key`, on loopback: what the model process serves.

    Fallbacks are dropped here; the gateways keep them (they know every model)."""
    local = [
        entry.model_copy(update={"fallbacks": []}) for entry in config.models if is_local(entry)
    ]
    if not local:
        return None
    server = config.server.model_copy(
        update={"host": "127.0.0.1", "api_keys": [key], "cors_origins": [], "workers": 1}
    )
    return ChatchatConfig.model_construct(server=server, models=local)


def gateway_config(
    config: ChatchatConfig, workers: int, model_url: str | None, model_key: str | None
) -> ChatchatConfig:
    """What each of `workers` gateway processes serves: limits divided, local entries remote."""
    server = gateway_server(config.server, workers)
    models = []
    for index, entry in enumerate(config.models):
        if is_local(entry):
            if model_url is None or model_key is None:
                raise ConfigError(f'models[{index}] "{entry.name}": no model process to call')
            models.append(_via_model_process(entry, model_url, model_key))
        else:
            models.append(_divided(index, entry, workers))
    return config.model_copy(update={"server": server, "models": models})


def gateway_server(settings: ServerSettings, workers: int) -> ServerSettings:
    """Each gateway's `server:` settings: its share of `max_connections`."""
    limit = settings.max_connections
    if workers == 1 or limit is None:
        return settings
    if limit < workers:
        raise ConfigError(
            f"server.max_connections: {limit} cannot be divided across {workers} worker"
            " processes (each needs at least 1); raise it or run fewer workers"
        )
    return settings.model_copy(update={"max_connections": limit // workers})


def _via_model_process(entry: ModelConfig, url: str, key: str) -> ModelConfig:
    # No limits and no retries here: the model process applies the entry's own, and its 429s
    # (with Retry-After) must reach the client as they would from a single process.
    replica = ReplicaConfig(
        url=f"{url}/v1",
        protocol="openai",
        params={"model": entry.name, "api_key": key, "max_retries": 0},
    )
    return ModelConfig(
        name=entry.name,
        kind=entry.kind,
        replicas=[replica],
        max_queue=entry.max_queue,
        queue_timeout=entry.queue_timeout,
        timeout=entry.timeout,
        fallbacks=entry.fallbacks,
    )


def _divided(index: int, entry: ModelConfig, workers: int) -> ModelConfig:
    if workers == 1:
        return entry

    def share(limit: int | None, where: str) -> int | None:
        if limit is None:
            return None
        if limit < workers:
            raise ConfigError(
                f'models[{index}] "{entry.name}"{where}.max_concurrency: {limit} cannot be divided'
                f" across {workers} worker processes (each needs at least 1); raise it or run"
                " fewer workers"
            )
        return limit // workers

    replicas = [
        replica.model_copy(
            update={"max_concurrency": share(replica.max_concurrency, f".replicas[{position}]")}
        )
        for position, replica in enumerate(entry.replicas)
    ]
    return entry.model_copy(
        update={
            "max_concurrency": share(entry.max_concurrency, ""),
            "max_queue": entry.max_queue // workers,
            "replicas": replicas,
        }
    )


# -- inside each gateway process -----------------------------------------------------------------
@functools.cache
def _source_config() -> ChatchatConfig:
    from langchain_chatchat.server.defaults import default_config

    return default_config()


def gateway_app() -> Any:
    """The uvicorn factory each gateway process calls (`--factory`): its share of the config."""
    from langchain_chatchat.server.app import create_app

    config = gateway_config(
        _source_config(),
        int(os.environ.get(WORKERS_ENV, "1")),
        os.environ.get(MODEL_URL_ENV),
        os.environ.get(MODEL_KEY_ENV),
    )
    application = create_app(config)
    gc.collect()
    gc.freeze()  # as in a single process: start-up objects never die, keep full GCs short
    return application


def __getattr__(name: str) -> Any:
    """`gateway_protocol`: the HTTP protocol with the `server:` limits, built in each gateway
    from its config (uvicorn imports it by name there: a class made at run time cannot be
    pickled into a spawned process)."""
    if name == "gateway_protocol":
        from langchain_chatchat.server.protocol import guarded_protocol

        return guarded_protocol(_source_config().server)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- inside the model process ---------------------------------------------------------------------
def model_process_main() -> None:
    """Serve the local entries on the inherited listening socket until the parent goes away."""
    import uvicorn

    from langchain_chatchat.server.access_log import uvicorn_log_config
    from langchain_chatchat.server.app import create_app
    from langchain_chatchat.server.defaults import default_config

    key = os.environ[MODEL_KEY_ENV]
    try:
        config = model_process_config(default_config(), key)
        if config is None:
            raise ConfigError("the config has no local models")
        application = create_app(config)
    except ConfigError as error:
        print(f"chatchat: config error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    _exit_with_parent(int(os.environ[_PARENT_ENV]))
    gc.collect()
    gc.freeze()
    uvicorn.run(
        application,
        fd=int(os.environ[_FD_ENV]),
        log_level=os.environ.get("CHATCHAT_LOG_LEVEL", "warning"),
        log_config=uvicorn_log_config(),
        access_log=False,
    )


def _exit_with_parent(parent: int) -> None:
    """SIGTERM ourselves (a clean uvicorn shutdown) once `parent` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="chatchat-parent-watch", daemon=True).start()


# -- the parent ---------------------------------------------------------------------------------
@dataclass
class ModelProcess:
    """The running model process and how gateways reach it."""

    process: subprocess.Popen[bytes]
    url: str
    key: str

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def check_port_free(host: str, port: int) -> None:
    """Bind and release `host:port` the way uvicorn will, so a busy port fails before start-up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {error.strerror or error}"
            ) from None


def validate(config: ChatchatConfig, workers: int) -> None:
    """Build every gateway-side model once (then close them): a bad entry fails here."""
    from langchain_chatchat.server.registry import ModelRegistry

    placeholder = "http://127.0.0.1:9"  # never called: the model process is not up yet
    registry = ModelRegistry.from_config(gateway_config(config, workers, placeholder, "-"))
    asyncio.run(registry.aclose())


def start_model_process(config_path: Path | None, log_level: str) -> ModelProcess:
    """Start the model process on a fresh loopback port and wait until it is ready."""
    key = "sk-model-process-" + secrets.token_urlsafe(24)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import model_process_main as m; m()"],
            env={
                **{name: value for name, value in os.environ.items() if name != SHARED_DIR_ENV},
                **_config_env(config_path),
                _FD_ENV: str(listener.fileno()),
                MODEL_KEY_ENV: key,
                _PARENT_ENV: str(os.getpid()),
                "CHATCHAT_LOG_LEVEL": log_level,
            },
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(listener.fileno(),),
        )
    finally:
        listener.close()  # the child holds its own copy
    model_process = ModelProcess(process, url, key)
    try:
        _wait_ready(model_process)
    except BaseException:
        model_process.stop()
        raise
    threading.Thread(target=_relay, args=(process,), daemon=True).start()
    return model_process


def _wait_ready(model_process: ModelProcess) -> None:
    process = model_process.process
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            lines = [line for line in stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {process.returncode}"
            raise ConfigError(
                f"the model process did not start: {reason.removeprefix('chatchat: config error: ')}"
            )
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{model_process.url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.2)
    raise ConfigError(f"the model process was not ready after {_READY_TIMEOUT:.0f}s")


def _relay(process: subprocess.Popen[bytes]) -> None:
    """Pass the model process's log lines to ours (its stderr is a pipe for start-up errors)."""
    assert process.stderr is not None
    for line in iter(process.stderr.readline, b""):
        sys.stderr.buffer.write(line)
        sys.stderr.flush()


def _config_env(config_path: Path | None) -> dict[str, str]:
    from langchain_chatchat.server.defaults import CONFIG_ENV

    return {} if config_path is None else {CONFIG_ENV: str(config_path.resolve())}


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[str]:
    """A fresh directory for the gateways' metric files, private to this user (0700), whose
    dead gateways' live gauges are dropped as they die; removed, with every file, at exit.

    Never reused: a previous run's files would add its counts to this one's."""
    path = tempfile.mkdtemp(prefix="chatchat-metrics-")
    stop = threading.Event()
    sweeper = threading.Thread(
        target=_sweep_dead_gateways, args=(path, stop), name="chatchat-metrics-sweep", daemon=True
    )
    sweeper.start()
    try:
        yield path
    finally:
        stop.set()
        sweeper.join()
        shutil.rmtree(path, ignore_errors=True)


def _sweep_dead_gateways(path: str, stop: threading.Event) -> None:
    """`mark_process_dead` for every gateway that left gauge files and no longer runs (crashed,
    or replaced by uvicorn): its in-flight and health series must not outlive it."""
    from prometheus_client.multiprocess import mark_process_dead

    while not stop.wait(PUBLISH_INTERVAL):
        for pid in {_writer_pid(name) for name in os.listdir(path) if name.startswith("gauge_")}:
            if pid is not None and not _running(pid):
                mark_process_dead(pid, path)


def _writer_pid(file_name: str) -> int | None:
    """The pid in prometheus_client's file name `gauge_<mode>_<pid>.db`."""
    pid = file_name.removesuffix(".db").rpartition("_")[2]
    return int(pid) if pid.isdigit() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, PermissionError):  # gone, or the pid is someone else's now
        return False
    return True


@contextlib.contextmanager
def worker_environment(
    workers: int,
    config_path: Path | None,
    model_process: ModelProcess | None,
    metrics_dir: str | None = None,
) -> Iterator[None]:
    """The variables every gateway process reads in `gateway_app` (inherited at spawn)."""
    update = {WORKERS_ENV: str(workers), **_config_env(config_path)}
    if model_process is not None:
        update[MODEL_URL_ENV] = model_process.url
        update[MODEL_KEY_ENV] = model_process.key
    if metrics_dir is not None:
        update[SHARED_DIR_ENV] = metrics_dir
    saved = {name: os.environ.get(name) for name in update}
    os.environ.update(update)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def serve_workers(
    config: ChatchatConfig,
    config_path: Path | None,
    *,
    workers: int,
    host: str,
    port: int,
    log_level: str,
    uvicorn_options: dict[str, Any] | None = None,
) -> None:
    """Check once, start the model process if needed, run `workers` gateways, stop them all.

    `uvicorn_options` (log config, protocol limits) apply to every gateway process, with each
    gateway's share of `max_connections`."""
    import uvicorn

    from langchain_chatchat.server.access_log import uvicorn_log_config

    options = {"log_config": uvicorn_log_config(), **(uvicorn_options or {})}
    if not isinstance(options.get("http", "auto"), str):
        options["http"] = f"{__name__}:gateway_protocol"
    check_port_free(host, port)
    validate(config, workers)
    options["limit_concurrency"] = concurrency_limit(
        gateway_server(config.server, workers).max_connections
    )
    model_process = (
        start_model_process(config_path, log_level)
        if any(is_local(entry) for entry in config.models)
        else None
    )
    try:
        with contextlib.ExitStack() as stack:
            metrics_dir = (
                stack.enter_context(shared_metrics_dir()) if config.server.metrics else None
            )
            stack.enter_context(
                worker_environment(workers, config_path, model_process, metrics_dir)
            )
            uvicorn.run(
                f"{__name__}:gateway_app",
                factory=True,
                workers=workers,
                host=host,
                port=port,
                log_level=log_level,
                access_log=False,
                **options,
            )
    finally:
        if model_process is not None:
            model_process.stop()
