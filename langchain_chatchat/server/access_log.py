"""Request ids, the structured access log and the HTTP metrics, in one outer middleware.

Every response carries `X-Request-ID`: the client's own when it sent a sane one, else a fresh
one. When the response is finished (the last byte of a stream included), one JSON line goes to
the `langchain_chatchat.access` logger:

    {"request_id": "...", "method": "POST", "path": "/v1/chat/completions", "status": 200,
     "duration_ms": 812.4, "client": "127.0.0.1", "model": "qwen-plus", "replica": "0:qwen"}

`model`/`replica` name the replica that served the request (set by the pool through a context
variable). Headers, query strings and bodies are never logged, so neither are keys. The line is
built only when the logger is enabled for INFO. `chatchat serve` (see `uvicorn_log_config`) and
`uvicorn --factory` (see `configure_logging`) print it as is, one JSON object per line, or as
one readable line when stderr is a terminal; an app embedded elsewhere decides for itself.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
import time
import uuid
import warnings
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
        root_path = scope.get("root_path", "")
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
            route = self.metrics.routes.label(scope, root_path)
            self.metrics.observe_http(scope["method"], route, status, seconds)
            if self.access_log and logger.isEnabledFor(logging.INFO):
                fields = _fields(scope, context, status, seconds)
                logger.info(json.dumps(fields, ensure_ascii=False), extra={"access": fields})


def _fields(scope: Scope, context: RequestContext, status: int, seconds: float) -> dict[str, Any]:
    client = scope.get("client")
    return {
        "request_id": context.request_id,
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "client": client[0] if client else None,
        "model": context.model,
        "replica": context.replica,
    }


class ChatchatFormatter(logging.Formatter):
    """Access lines as bare JSON (or, on a terminal, one readable line); the package's other
    records as `LEVEL:    message`, aligned with uvicorn's own lines."""

    def __init__(self, readable: bool | None = None) -> None:
        super().__init__()
        self.readable = sys.stderr.isatty() if readable is None else readable

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "access", None)
        if fields is None:
            line = f"{record.levelname + ':':<9} {record.getMessage()}"
            return f"{line}\n{self.formatException(record.exc_info)}" if record.exc_info else line
        if not self.readable:
            return record.getMessage()
        served = f" {fields['model']} [{fields['replica']}]" if fields["model"] else ""
        return (
            f"{self.formatTime(record, '%H:%M:%S')} {fields['method']} {fields['path']}"
            f" {fields['status']} {fields['duration_ms']:.0f}ms{served} id={fields['request_id']}"
        )


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging config plus the package's loggers (uvicorn's own access log, without
    request ids or models, is then turned off by `chatchat serve`)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["chatchat"] = {"()": ChatchatFormatter}
    config["handlers"]["chatchat"] = {
        "class": "logging.StreamHandler",
        "formatter": "chatchat",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["langchain_chatchat"] = {
        "handlers": ["chatchat"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def configure_logging(access_log: bool, level: str = "info") -> None:
    """Under `uvicorn --factory` (uvicorn configured its loggers, nobody configured ours): log
    as `chatchat serve` does, and let our access log replace uvicorn's. Anywhere else (tests,
    notebooks, an app that set up logging) nothing changes."""
    quiet_libraries()
    package = logging.getLogger("langchain_chatchat")
    if package.hasHandlers() or not logging.getLogger("uvicorn").handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ChatchatFormatter())
    package.addHandler(handler)
    package.setLevel(level.upper())
    package.propagate = False
    if access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def quiet_libraries() -> None:
    """Silence what a server user cannot act on: torch/transformers deprecation warnings raised
    while serving, and their progress bars."""
    for module in ("torch", "transformers", "accelerate"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=rf"{module}(\.|$)")
    if "transformers" in sys.modules:
        transformers_logging = sys.modules["transformers"].utils.logging
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
