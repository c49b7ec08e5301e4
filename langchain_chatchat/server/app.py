"""`create_app(config)`: one FastAPI app, every configured model served two ways.

The OpenAI-compatible router and the LangServe routes get their models from the same
registry, so `/v1/chat/completions` with `"model": "qwen-plus"` and `/qwen-plus/invoke` call
the very same dispatcher (and so share replicas, limits and health). The app's lifespan closes
every replica's clients at shutdown. Usable from a user's own `app/server.py`:

    from langchain_chatchat.server import create_app
    app = create_app("chatchat.yaml")
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from sse_starlette.sse import AppStatus
from starlette.responses import Response

from langchain_chatchat import __version__
from langchain_chatchat.server.access_log import configure_logging
from langchain_chatchat.server.config import ChatchatConfig, load_config
from langchain_chatchat.server.defaults import default_config
from langchain_chatchat.server.langserve_routes import add_langserve_routes
from langchain_chatchat.server.metrics import CONTENT_TYPE, Metrics
from langchain_chatchat.server.middleware import install
from langchain_chatchat.server.openai import openai_router
from langchain_chatchat.server.openai.streaming import dumps
from langchain_chatchat.server.readiness import Readiness
from langchain_chatchat.server.registry import ModelRegistry
from langchain_chatchat.server.web import install_web

ConfigSource = ChatchatConfig | Mapping[str, Any] | str | os.PathLike[str]


def create_app(config: ConfigSource | None = None, *, lazy: bool = False) -> FastAPI:
    """Build the app from a config (file path, dict or `ChatchatConfig`; the default when None).

    Every model is constructed here, so a bad entry raises `ConfigError` before anything is served.
    Models with weights (local ones) load at start-up, `/ready` saying 503 meanwhile; `lazy`
    leaves them to load on their first request.
    """
    config = default_config() if config is None else load_config(config)
    metrics = Metrics()
    registry = ModelRegistry.from_config(config, metrics)
    readiness = Readiness(
        ((served.name, [r.model for r in served.pool.replicas]) for served in registry), lazy=lazy
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # sse-starlette (LangServe's SSE) keeps one process-wide exit event bound to the first
        # event loop that streamed; a second server in the same process (tests, notebooks,
        # embedding apps) must start with a fresh one or its LangServe streams fail.
        AppStatus.should_exit_event = None
        loading = asyncio.create_task(readiness.run())
        yield
        loading.cancel()
        await registry.aclose()

    app = FastAPI(
        title="langchain-chatchat",
        version=__version__,
        summary="OpenAI-compatible and LangServe endpoints over the same LangChain models.",
        lifespan=lifespan,
        docs_url=None,  # served offline by server/web, with the API key
        redoc_url=None,
    )
    # For code embedding this app (its own routes, a custom uvicorn runner, tests).
    app.state.config = config
    app.state.registry = registry
    install(app, config.server, metrics, [served.name for served in registry])
    app.include_router(openai_router(registry))
    app.include_router(_probes(registry, readiness))
    if config.server.metrics:
        app.include_router(_metrics_route(metrics))
    add_langserve_routes(app, registry)
    install_web(app)
    if config.server.api_keys:
        _declare_bearer_auth(app)
    metrics.routes.bind(app.routes, [served.name for served in registry])
    configure_logging(config.server.access_log, config.server.log_level)
    return app


def _declare_bearer_auth(app: FastAPI) -> None:
    """Put the Bearer scheme in the OpenAPI schema, so Swagger UI offers "Authorize"."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "server.api_keys"}
        }
        schema["security"] = [{"bearer": []}]
        for probe in ("/health", "/ready"):
            for operation in schema["paths"].get(probe, {}).values():
                operation["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _probes(registry: ModelRegistry, readiness: Readiness) -> APIRouter:
    router = APIRouter(tags=["health"])
    ready = dumps({"status": "ready", "models": [served.name for served in registry]})

    @router.get("/health")
    async def health() -> Response:
        """Liveness: the process answers."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    @router.get("/ready")
    async def ready_probe() -> Response:
        """Readiness: every configured model is constructed, and loaded and warmed (503 until)."""
        if not readiness.ready:
            return Response(dumps(readiness.status()), 503, media_type="application/json")
        return Response(ready, media_type="application/json")

    return router


def _metrics_route(metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text format; behind the API keys like every route but the probes."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return router
