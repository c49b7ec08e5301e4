"""Request ids, the structured access log and the HTTP metrics, in one outer middleware.

Every response carries `X-Request-ID`: the client's own when it sent a sane one, else a fresh
one. When the response is finished (the last byte of a stream included), one JSON line goes to
the `langchain_chatchat.access` logger:

    {"request_id": "...", "method": "POST", "path": "/v1/chat/completions", "status": 200,
     "duration_ms": 812.4, "client": "127.0.0.1", "model": "qwen-plus", "replica": "0:qwen"}

`model`/`replica` name the replica that served the request (set by the pool through a context
variable). Headers, query strings and bodies are never logged, so neither are keys. The line is
built only when the logger is enabled for INFO; `chatchat serve` enables it (see
`uvicorn_log_config`), an embedding app decides for itself.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG

from langchain_chatchat.server.metrics import Metrics

logger = logging.getLogger("langchain_chatchat.access")
_CLIENT_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestContext:
    """What the access log learns about a request while it is served."""

    __slots__ = ("model", "replica", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.model: str | None = None
        self.replica: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("chatchat_request", default=None)


def note_replica(model: str, replica: str) -> None:
    """Record which replica serves the current request (a no-op outside a request)."""
    context = _current.get()
    if context is not None:
        context.model = model
        context.replica = replica


def current_request_id() -> str | None:
    """The id of the request being served (None outside a request): for calls that carry it
    to another process, such as a Ray Serve model replica."""
    context = _current.get()
    return None if context is None else context.request_id


class RequestContextMiddleware:
    """Request id in and out; an access-log line and HTTP metrics once the response is done."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        if not _CLIENT_REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex.encode()
        context = RequestContext(request_id.decode())
        token = _current.set(context)
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_http(scope["method"], route, status, seconds)
            if self.access_log and logger.isEnabledFor(logging.INFO):
                logger.info(_line(scope, context, status, seconds))


def _line(scope: Scope, context: RequestContext, status: int, seconds: float) -> str:
    client = scope.get("client")
    return json.dumps(
        {
            "request_id": context.request_id,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "client": client[0] if client else None,
            "model": context.model,
            "replica": context.replica,
        },
        ensure_ascii=False,
    )


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging config plus the access log (uvicorn's own, without request ids or
    models, is then turned off by `chatchat serve`)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["langchain_chatchat"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config
