"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

Typed worker errors keep their own status, type, code and param. Anything unexpected is
logged with its traceback on the server and reaches the client only as a generic message.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.responses import Response

from langchain_chatchat.server.config import format_location
from langchain_chatchat.workers.errors import ChatchatError
from langchain_chatchat.workers.redact import redact

logger = logging.getLogger("langchain_chatchat.server")

_TYPES_BY_STATUS = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    504: "timeout_error",
}
INTERNAL_ERROR_MESSAGE = "The server had an error while processing your request."


def openai_type(status: int) -> str:
    """OpenAI's error `type` for an HTTP status."""
    return _TYPES_BY_STATUS.get(status) or (
        "api_error" if status >= 500 else "invalid_request_error"
    )


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> bytes:
    return json.dumps(
        {"error": {"message": redact(message), "type": type_, "param": param, "code": code}},
        ensure_ascii=False,
    ).encode()


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        error_body(message, openai_type(status), param=param, code=code),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def chatchat_error_response(error: ChatchatError) -> Response:
    """A typed worker error as is: its own status, type, code and param, plus Retry-After."""
    headers = {"retry-after": str(max(1, round(error.retry_after)))} if error.retry_after else None
    return Response(
        typed_error_body(error),
        status_code=error.status_code,
        headers=headers,
        media_type="application/json",
    )


def stream_error_event(error: BaseException) -> bytes:
    """The one SSE event that ends a stream which failed after its first chunk."""
    if isinstance(error, ChatchatError):
        body = typed_error_body(error)
    else:
        logger.error("unhandled error while streaming a response", exc_info=error)
        body = error_body(INTERNAL_ERROR_MESSAGE, "api_error")
    return b"data: " + body + b"\n\n"


def typed_error_body(error: ChatchatError) -> bytes:
    return error_body(
        error.message, error.openai_type, param=error.param, code=error.openai_code or error.code
    )


def validation_message(errors: list[Any]) -> tuple[str, str | None]:
    """FastAPI/pydantic validation errors → one readable message and the `param` it concerns."""
    first = errors[0] if errors else "invalid request"
    if not isinstance(first, dict):
        return str(first), None
    location = [part for part in first.get("loc", ()) if part != "body"]
    param = format_location(location) or None
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return "We could not parse the JSON body of your request.", None
    if first.get("type") == "extra_forbidden":
        names = [
            format_location([p for p in item.get("loc", ()) if p != "body"])
            for item in errors
            if isinstance(item, dict) and item.get("type") == "extra_forbidden"
        ]
        plural = "s" if len(names) > 1 else ""
        return f"Unrecognized request argument{plural} supplied: {', '.join(names)}", param
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return (f"Invalid '{param}': {message}{more}" if param else f"{message}{more}"), param
