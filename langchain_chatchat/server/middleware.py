"""Cross-cutting concerns, written once for both protocols: request ids, access log and
metrics (`access_log.py`), request-head size, API keys, body size and encoding, CORS, LangServe
stream errors, redaction of configured secrets, and OpenAI-shaped errors for everything that
goes wrong.

The middlewares are plain ASGI (not `BaseHTTPMiddleware`): they add no task or memory stream
per request and leave streaming responses untouched.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langchain_chatchat.server.access_log import RequestContextMiddleware
from langchain_chatchat.server.config import ServerSettings
from langchain_chatchat.server.metrics import Metrics
from langchain_chatchat.server.openai.errors import (
    INTERNAL_ERROR_MESSAGE,
    chatchat_error_response,
    error_response,
    typed_error_body,
    validation_message,
)
from langchain_chatchat.server.web.session import AUTHORIZED, BrowserAccessMiddleware
from langchain_chatchat.workers.errors import ChatchatError
from langchain_chatchat.workers.redact import (
    install_log_redaction,
    register_secrets,
    register_secrets_in,
)

logger = logging.getLogger("langchain_chatchat.server")

PUBLIC_PATHS = frozenset({"/health", "/ready"})


class ApiKeyMiddleware:
    """Require `Authorization: Bearer <key>` on every route except the health probes and what
    `BrowserAccessMiddleware` admits (page shells, the playground's session cookie)."""

    def __init__(self, app: ASGIApp, api_keys: Sequence[str]) -> None:
        self.app = app
        self.keys = [key.encode() for key in api_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in PUBLIC_PATHS
            or scope.get(AUTHORIZED) is True
            or self._authorized(scope)
        ):
            await self.app(scope, receive, send)
            return
        response = error_response(
            401,
            "Incorrect or missing API key; send it as 'Authorization: Bearer <key>'.",
            code="invalid_api_key",
            headers={"www-authenticate": "Bearer"},
        )
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token = token.strip()
        valid = False
        for key in self.keys:  # compare with every key, so timing reveals nothing
            valid |= hmac.compare_digest(token, key)
        return valid


class HeadLimitMiddleware:
    """431 for a request head (path, query and headers) over `max_header_size`: the server's
    protocol (`protocol.py`) cuts off heads that never end; this catches those that arrived
    whole in one read."""

    def __init__(self, app: ASGIApp, max_header_size: int) -> None:
        self.app = app
        self.max_head = max_header_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            head += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if head > self.max_head:
                response = error_response(
                    431,
                    f"The request head is larger than the server's limit of {self.max_head} bytes.",
                    code="request_header_fields_too_large",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyGuardMiddleware:
    """Read a request's body before the app sees it: 413 past `max_body_size`, 400 for bytes
    that are not UTF-8 and for JSON escapes of lone UTF-16 surrogates (which no UTF-8 encoder
    downstream could send on).

    An oversized body is still read (and dropped) up to `drain_limit` before the 413 goes out:
    a client that writes its whole body before reading (Python's urllib, say) would otherwise
    hit a reset connection and never see the answer. A client that sent
    `Expect: 100-continue` is answered at once, before it sends anything.
    """

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.limit = max_body_size
        self.drain_limit = max(4 * max_body_size, 16 * 1024 * 1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope["headers"]):
            await self.app(scope, receive, send)
            return
        declared = _header(scope["headers"], b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            if _header(scope["headers"], b"expect") != b"100-continue":
                await _drain(receive, self.drain_limit)
            await self._too_large()(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                if message.get("more_body", False):
                    await _drain(receive, self.drain_limit - size)
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not body.isascii() and not _is_utf8(body):
            # json.loads would decode it with "surrogatepass", letting lone surrogates in
            await error_response(400, "The request body is not valid UTF-8.")(scope, receive, send)
            return
        if has_lone_surrogate(body):
            response = error_response(
                400,
                "The request body contains a lone UTF-16 surrogate escape (such as \\ud800);"
                " strings must be valid Unicode.",
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # what follows the body: the client's disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> Response:
        return error_response(
            413,
            f"The request body is larger than the server's limit of {self.limit} bytes.",
            code="request_too_large",
        )


class LangServeStreamErrorMiddleware:
    """The right status in LangServe's `event: error`, and a cleanly ended stream.

    LangServe's stream endpoints (`/stream`, `/stream_log`, `/stream_events`) report any
    failure as `event: error` with `{"status_code": 500, "message": "Internal Server Error"}`
    and then re-raise, which cuts the chunked transfer. This holds such an event back: when the
    exception follows, a typed error (`ChatchatError`) replaces it with its own status, message,
    OpenAI error object and `retry_after` (an upstream 429 stays a 429, a timeout is a 504, an
    upstream failure a 502), anything else keeps LangServe's generic 500 and is logged; either
    way the stream then ends properly.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].endswith(_LANGSERVE_STREAMS)
        ):
            await self.app(scope, receive, send)
            return
        held: list[bytes] = []
        started = ended = False

        async def holding_send(message: Message) -> None:
            nonlocal started, ended
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if body.startswith(b"event: error"):
                    held.append(body)
                    return
                if held and not body.startswith(b":"):  # pings may pass a held event
                    await send(
                        {"type": "http.response.body", "body": b"".join(held), "more_body": True}
                    )
                    held.clear()
                ended = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, holding_send)
        except Exception as raised:
            if not started or ended:
                raise
            error = _root_cause(raised)
            if not isinstance(error, ChatchatError):
                logger.error("unhandled error while streaming a LangServe response", exc_info=error)
            await send(
                {
                    "type": "http.response.body",
                    "body": _stream_error_event(error),
                    "more_body": True,
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})


_LANGSERVE_STREAMS = ("/stream", "/stream_log", "/stream_events")


def _root_cause(error: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups, as anyio's task groups raise them."""
    while isinstance(inner := getattr(error, "exceptions", None), tuple) and len(inner) == 1:
        error = inner[0]
    return error


def _stream_error_event(error: BaseException) -> bytes:
    if isinstance(error, ChatchatError):
        data: dict[str, object] = {
            "status_code": error.status_code,
            "message": error.message,
            "error": json.loads(typed_error_body(error))["error"],
        }
        if error.retry_after:
            data["retry_after"] = max(1, round(error.retry_after))
    else:
        data = {"status_code": 500, "message": "Internal Server Error"}
    return b"event: error\r\ndata: " + json.dumps(data, ensure_ascii=False).encode() + b"\r\n\r\n"


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((value for key, value in headers if key == name), None)


def _has_body(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    length = _header(headers, b"content-length")
    if length is not None:
        return length != b"0"
    return _header(headers, b"transfer-encoding") is not None


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop the rest of a body, up to `limit` bytes."""
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))


# A backslash run, `u`, and a surrogate code unit: an escape when the run has odd length.
_SURROGATE_ESCAPE = re.compile(rb"(\\+)u[dD]([89abAB]|[c-fC-F])[0-9a-fA-F]{2}")


def has_lone_surrogate(body: bytes) -> bool:
    """Whether a JSON text escapes a UTF-16 surrogate that is not part of a valid pair."""
    if b"\\u" not in body:
        return False
    pending_end: int | None = None  # where a high surrogate's escape ended
    for match in _SURROGATE_ESCAPE.finditer(body):
        if len(match.group(1)) % 2 == 0:
            continue  # an escaped backslash followed by the letter u
        escape_start = match.end(1) - 1
        high = match.group(2) in b"89abAB"
        if pending_end is not None:
            if high or escape_start != pending_end:
                return True
            pending_end = None
        elif high:
            pending_end = match.end()
        else:
            return True
    return pending_end is not None


def _error(error: HTTPException) -> Response:
    return error_response(
        error.status_code, str(error.detail), code=_HTTP_CODES.get(error.status_code)
    )


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def install(
    app: FastAPI, settings: ServerSettings, metrics: Metrics, models: Sequence[str] = ()
) -> None:
    """Add the middlewares (outermost first: CORS, request context, head limit, browser access,
    auth, body guard, LangServe stream errors) and the error handlers; `models` are the served
    names (their playgrounds)."""
    install_log_redaction()
    register_secrets(settings.api_keys)
    config = getattr(app.state, "config", None)
    for model in config.models if config is not None else ():
        register_secrets_in(model.params)
        for replica in model.replicas:
            register_secrets_in(replica.params)
    app.add_middleware(LangServeStreamErrorMiddleware)
    app.add_middleware(BodyGuardMiddleware, max_body_size=settings.max_body_size)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, api_keys=settings.api_keys)
        app.add_middleware(BrowserAccessMiddleware, api_keys=settings.api_keys, models=models)
    app.add_middleware(HeadLimitMiddleware, max_header_size=settings.max_header_size)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, access_log=settings.access_log)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["x-request-id"],
        )

    @app.exception_handler(ChatchatError)
    async def on_chatchat_error(_: Request, error: ChatchatError) -> Response:
        return chatchat_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, error: RequestValidationError) -> Response:
        message, param = validation_message(list(error.errors()))
        return error_response(400, message, param=param)

    @app.exception_handler(RecursionError)
    async def on_too_deep(_: Request, error: RecursionError) -> Response:
        # Raised by JSON parsers and validators on absurdly nested input, never by our code.
        return error_response(400, "The request body is nested too deeply.")

    @app.exception_handler(HTTPException)
    async def on_http_error(_: Request, error: HTTPException) -> Response:
        response = _error(error)
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(Exception)
    async def on_unexpected_error(_: Request, error: Exception) -> Response:
        # Starlette re-raises after this, so the server logs the traceback; clients never see it.
        return error_response(500, INTERNAL_ERROR_MESSAGE)
