"""Cross-cutting concerns, written once for both protocols: request ids, access log and
metrics (`access_log.py`), API keys, body size, CORS, and OpenAI-shaped errors for everything
that goes wrong.

The middlewares are plain ASGI (not `BaseHTTPMiddleware`): they add no task or memory stream
per request and leave streaming responses untouched.
"""

from __future__ import annotations

import hmac
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
    validation_message,
)
from langchain_chatchat.server.web.session import AUTHORIZED, BrowserAccessMiddleware
from langchain_chatchat.workers.errors import ChatchatError

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


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"The request body is larger than the server's limit of {limit} bytes."
        )


class BodySizeLimitMiddleware:
    """413 for bodies over the limit: at once from Content-Length, else while reading."""

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.limit = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _error(_BodyTooLarge(self.limit))(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        await self.app(scope, receive_limited, send)


def _error(error: HTTPException) -> Response:
    return error_response(
        error.status_code, str(error.detail), code=_HTTP_CODES.get(error.status_code)
    )


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def install(
    app: FastAPI, settings: ServerSettings, metrics: Metrics, models: Sequence[str] = ()
) -> None:
    """Add the middlewares (outermost first: CORS, request context, browser access, auth, body
    size) and the error handlers; `models` are the served names (their playgrounds)."""
    app.add_middleware(BodySizeLimitMiddleware, max_body_size=settings.max_body_size)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, api_keys=settings.api_keys)
        app.add_middleware(BrowserAccessMiddleware, api_keys=settings.api_keys, models=models)
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

    @app.exception_handler(HTTPException)
    async def on_http_error(_: Request, error: HTTPException) -> Response:
        response = _error(error)
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(Exception)
    async def on_unexpected_error(_: Request, error: Exception) -> Response:
        # Starlette re-raises after this, so the server logs the traceback; clients never see it.
        return error_response(500, INTERNAL_ERROR_MESSAGE)
