"""Many machines: the app on Ray Serve (optional extra `ray`).

    serve run langchain_chatchat.server.ray:build_app config=chatchat.yaml
    chatchat serve --ray [--address auto] --config chatchat.yaml

`create_app()` is the Serve ingress (the same routes, OpenAI and LangServe). Every model entry
with a `ray:` section becomes its own Serve deployment (`model-<name>`): its replicas build
that entry inside the replica (a local model loads on the GPU node Ray places it on, an API
model gets replicas with their own connection pools), with the section's `num_replicas` or
`autoscaling_config` and `ray_actor_options`. Entries without one run inside the ingress.
Ray replaces Chatchat 0.2's controller and heartbeats: placement, health, restarts and
autoscaling are Ray's.

Secrets stay out of Ray's cluster store: a deployment is given its config entry as written,
`${VAR}` unexpanded, and expands it inside the replica from that node's environment (so set
provider keys in every Ray node's environment, e.g. a Kubernetes secret; literal keys in the
file would travel as written, and `runtime_env` is refused in `ray_actor_options`).

Inside a replica, the entry's own replicas, limits, retries and failover work as in one
process; Serve's own routing and `max_ongoing_requests` spread calls over the Ray replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from langchain_core.runnables import Runnable
from ray import serve
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langchain_chatchat.providers import Provider, register_provider
from langchain_chatchat.server.config import ConfigError, RayConfig, load_config
from langchain_chatchat.server.metrics import Metrics
from langchain_chatchat.server.registry import ServedModel, build_model
from langchain_chatchat.workers.errors import BadRequestError

RAY_PROVIDER = Provider(
    "ray_deployment",
    chat="langchain_chatchat.server.ray_models:ChatRayDeployment",
    embeddings="langchain_chatchat.server.ray_models:RayDeploymentEmbeddings",
)
APP_NAME = "chatchat"
MAX_BATCH = 64
"""Most chunks sent as one Ray item (a slow stream sends each chunk as it comes)."""
_END = object()
access_logger = logging.getLogger("ray.serve.chatchat")
"""A child of Serve's replica logger: our lines land in the replica's log file, next to (and
tagged with the same request id as) Serve's own."""


def deployment_name(model: str) -> str:
    return f"model-{model}"


# -- a model entry inside a replica ---------------------------------------------------------------
class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ModelDeployment:
    """One config entry, built inside a Serve replica from the entry as written."""

    def __init__(self, raw_entry: Mapping[str, Any], index: int) -> None:
        # `${VAR}` expands here, from this node's environment; the entry is checked again.
        entry = load_config({"models": [dict(raw_entry)]}).models[0]
        self.metrics = Metrics()
        self.served: ServedModel = build_model(index, entry, int(time.time()), self.metrics)
        self.label = f"ray:{os.getpid()}"
        self.ray_metrics = ReplicaMetrics(entry.name)

    def _runnable(self, request: Mapping[str, Any]) -> Runnable:
        tools = request.get("tools")
        if not tools:
            return self.served.dispatcher  # type: ignore[return-value]
        try:
            return self.served.dispatcher.bind_tools(tools, **request["tool_options"])  # type: ignore[union-attr]
        except ValueError as error:
            raise BadRequestError(str(error), param="tool_choice") from None

    async def invoke(self, request: Mapping[str, Any]) -> Any:
        with self._logged("invoke", request.get("request_id")):
            reply = await self._runnable(request).ainvoke(request["input"], **request["kwargs"])
            self.ray_metrics.count_tokens(reply)
            return reply

    async def stream(self, request: Mapping[str, Any]) -> AsyncIterator[list[Any]]:
        """The chunks in lists of what is ready: one Ray item per burst, not per chunk."""
        with self._logged("stream", request.get("request_id")):
            chunks = self._runnable(request).astream(request["input"], **request["kwargs"])
            queue: asyncio.Queue[Any] = asyncio.Queue()
            pump = asyncio.create_task(_pump(chunks, queue))
            try:
                while True:
                    item, batch = await queue.get(), []
                    while item is not _END and not isinstance(item, _Failed):
                        batch.append(item)
                        if queue.empty() or len(batch) >= MAX_BATCH:
                            break
                        item = queue.get_nowait()
                    if batch:
                        for chunk in batch:
                            self.ray_metrics.count_tokens(chunk)
                        yield batch
                    if item is _END:
                        return
                    if isinstance(item, _Failed):
                        raise item.error
            finally:
                pump.cancel()  # the caller left (Serve cancelled us): close the upstream call
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    async def embed(
        self, texts: list[str], dimensions: int | None, request_id: str | None
    ) -> tuple[list[list[float]], int]:
        with self._logged("embed", request_id):
            vectors, tokens = await self.served.embed(texts, dimensions)
            if tokens:
                self.ray_metrics.tokens.inc(tokens, tags={"type": "input"})
            return vectors, tokens

    async def __del__(self) -> None:
        for replica in self.served.pool.replicas:
            target = getattr(replica.model, "worker", replica.model)
            with contextlib.suppress(Exception):
                if (aclose := getattr(target, "aclose", None)) is not None:
                    await aclose()

    @contextlib.contextmanager
    def _logged(self, method: str, request_id: str | None) -> Any:
        """One access-log line and the Ray metrics per call, with the ingress's request id."""
        started, outcome = time.perf_counter(), "error"
        try:
            yield
            outcome = "ok"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self.ray_metrics.requests.inc(tags={"method": method, "outcome": outcome})
            if access_logger.isEnabledFor(logging.INFO):
                access_logger.info(
                    json.dumps(
                        {
                            "request_id": request_id,
                            "model": self.served.name,
                            "replica": self.label,
                            "outcome": outcome,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                        }
                    )
                )


class ReplicaMetrics:
    """Each replica's counters in Ray's metrics API: Ray exports them (with Serve's own
    per-replica metrics) in Prometheus format on every node's metrics port."""

    def __init__(self, model: str) -> None:
        from ray.util.metrics import Counter

        self.requests = Counter(
            "chatchat_replica_requests",
            "Calls served by this model replica, by method and outcome.",
            tag_keys=("model", "method", "outcome"),
        )
        self.requests.set_default_tags({"model": model})
        self.tokens = Counter(
            "chatchat_replica_tokens",
            "Tokens counted by this model replica (input: prompt, output: completion).",
            tag_keys=("model", "type"),
        )
        self.tokens.set_default_tags({"model": model})

    def count_tokens(self, message: Any) -> None:
        usage = getattr(message, "usage_metadata", None)
        if usage:
            if usage.get("input_tokens"):
                self.tokens.inc(usage["input_tokens"], tags={"type": "input"})
            if usage.get("output_tokens"):
                self.tokens.inc(usage["output_tokens"], tags={"type": "output"})


async def _pump(chunks: Any, queue: asyncio.Queue[Any]) -> None:
    try:
        async for chunk in chunks:
            queue.put_nowait(chunk)
    except asyncio.CancelledError:
        await chunks.aclose()
        raise
    except Exception as error:
        queue.put_nowait(_Failed(error))
    queue.put_nowait(_END)


# -- the ingress ------------------------------------------------------------------------------------
@serve.ingress()
class Ingress:
    """`create_app()` as the Serve ingress; `ray:` entries call their deployments."""

    def __init__(self, raw_config: Mapping[str, Any], *models: Any) -> None:
        self.raw_config = raw_config  # `models`: the deployments, bound so that Serve runs them

    def __serve_build_asgi_app__(self) -> ASGIApp:
        from langchain_chatchat.server.app import create_app

        register_provider(RAY_PROVIDER)
        return SingleRequestIdHeader(create_app(load_config(ingress_config(self.raw_config))))


class SingleRequestIdHeader:
    """Serve's proxy already answers with the request's X-Request-ID (the client's, else its
    own, which it also hands to us as the request header our access log uses): drop ours."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_once(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() != b"x-request-id"
                ]
            await send(message)

        await self.app(scope, receive, send_once)


def ingress_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The config the ingress serves: each `ray:` entry becomes a call to its deployment."""
    models = []
    for entry in raw["models"]:
        if not entry.get("ray"):
            models.append(entry)
            continue
        models.append(
            {
                "name": entry["name"],
                "kind": entry.get("kind", "chat"),
                "provider": RAY_PROVIDER.name,
                "params": {"deployment": deployment_name(entry["name"]), "app_name": APP_NAME},
                **{
                    key: entry[key]
                    for key in ("max_queue", "queue_timeout", "fallbacks")
                    if key in entry
                },
                "health": {"max_failures": 0},  # Ray takes dead replicas out, not us
            }
        )
    return {**raw, "models": models}


def _deployment_options(settings: RayConfig) -> dict[str, Any]:
    options = settings.model_dump(exclude_none=True)
    if not options.get("ray_actor_options"):
        options.pop("ray_actor_options", None)
    return options


def build_app(args: Mapping[str, Any] | None = None) -> Any:
    """The Serve application: `serve run langchain_chatchat.server.ray:build_app config=FILE`.

    `args["config"]` is a YAML path (default `$CHATCHAT_CONFIG`, else the built-in default) or
    the config itself as a mapping; `args["ingress"]` optionally holds the ingress deployment's
    options (`num_replicas`, `autoscaling_config`, `ray_actor_options`), like a `ray:` section.
    """
    args = dict(args or {})
    raw = raw_config(args.get("config"))
    register_provider(RAY_PROVIDER)
    config = load_config(raw)  # every entry checked (and `${VAR}` resolvable) before deploying
    deployments = []
    for index, entry in enumerate(config.models):
        if entry.ray is None:
            continue
        written = {key: value for key, value in raw["models"][index].items()}
        written.pop("ray", None)
        written.pop("fallbacks", None)  # the ingress falls back; a replica knows one model
        deployments.append(
            serve.deployment(ModelDeployment)
            .options(name=deployment_name(entry.name), **_deployment_options(entry.ray))
            .bind(written, index)
        )
    ingress = RayConfig.model_validate(args.get("ingress") or {})
    return (
        serve.deployment(Ingress)
        .options(name="ingress", **_deployment_options(ingress))
        .bind(raw, *deployments)
    )


def raw_config(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """The config as written (`${VAR}` unexpanded): what travels to replicas."""
    from langchain_chatchat.server.defaults import CONFIG_ENV, default_config

    if isinstance(source, Mapping):
        return dict(source)
    source = source or os.environ.get(CONFIG_ENV)
    if source is None:
        return default_config().model_dump(mode="json", exclude_defaults=True)
    path = Path(source)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        load_config(path)  # raises the ConfigError that says what is wrong
        raise
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise ConfigError(f"{path}: expected a mapping with `server:` and `models:` sections")
    return raw


def serve_ray(config_path: Path | None, *, address: str | None, host: str, port: int) -> None:
    """`chatchat serve --ray`: deploy on a cluster (`address`) or a local one, and block."""
    import ray

    raw = raw_config(config_path)
    if address is None and not ray.is_initialized():
        ray.init(include_dashboard=False)
    elif not ray.is_initialized():
        ray.init(address=address)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app({"config": raw}), name=APP_NAME, route_prefix="/", blocking=True)
