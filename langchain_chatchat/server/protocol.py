"""uvicorn's HTTP/1.1 protocols with a capped, timed request head.

uvicorn reads a request head for as long as the client keeps sending it: with httptools, a
16 MB header is read in full, and a client sending one byte every few seconds (slowloris) holds
its socket forever. Here a head larger than `server.max_header_size` is answered 431, and a head
not complete `server.header_timeout` seconds after the connection opened (or, on a kept-alive
connection, after the keep-alive wait that follows a response) is answered 408; both close the
connection. Malformed requests get 400. All three in OpenAI's error shape, like every other
error of the server. `uvicorn_options` gives `uvicorn.run`/`uvicorn.Config` these protocols and
the server's other connection limits (keep-alive, concurrent connections).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from uvicorn.protocols.http.h11_impl import H11Protocol

from langchain_chatchat.server.config import ServerSettings
from langchain_chatchat.server.openai.errors import error_body, openai_type

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional (uvicorn[standard]); h11 always works
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

Implementation = Literal["httptools", "h11"]
_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


class _GuardedHead:
    """What both protocols share: the head timer and the OpenAI-shaped early answers."""

    max_head: ClassVar[int]
    head_timeout: ClassVar[float]
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    timeout_keep_alive: float

    _head_timer: asyncio.TimerHandle | None = None
    _timed_cycle: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_head_timer(self.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm_head_timer(self.timeout_keep_alive + self.head_timeout)

    def _arm_head_timer(self, seconds: float) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._timed_cycle = self.cycle
        self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

    def _head_timed_out(self) -> None:
        """Close unless a request head arrived since the timer was armed."""
        self._head_timer = None
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.cycle is self._timed_cycle and not self.transport.is_closing():
            self._answer(408, "The request head did not arrive in time.")

    def send_400_response(self, msg: str) -> None:
        if self._head_was_too_large():
            self._answer(
                431,
                f"The request head is larger than the server's limit of {self.max_head} bytes.",
                code="request_header_fields_too_large",
            )
        else:
            self._answer(400, "Invalid HTTP request received.")

    def _head_was_too_large(self) -> bool:
        raise NotImplementedError

    def _answer(self, status: int, message: str, *, code: str | None = None) -> None:
        body = error_body(message, openai_type(status), code=code)
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()


class _GuardedH11(_GuardedHead):
    """h11 enforces the cap itself (`h11_max_incomplete_event_size`) and reports it as an
    invalid request; the buffered head's size tells the two apart."""

    conn: Any

    def _head_was_too_large(self) -> bool:
        return len(self.conn.trailing_data[0]) > self.max_head


class _GuardedHttpTools(_GuardedHead):
    """httptools has no cap (and hands a header over only once it is complete): the bytes
    received while a head is incomplete are counted as they arrive."""

    _in_head = True
    _head_bytes = 0
    _too_large = False

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        if self._in_head and self._head_bytes > self.max_head and not self.transport.is_closing():
            self._too_large = True
            self.send_400_response("")

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()  # type: ignore[misc]

    def on_response_complete(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_response_complete()

    def _head_was_too_large(self) -> bool:
        return self._too_large


def guarded_protocol(
    settings: ServerSettings, implementation: Implementation | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol (h11 without httptools, or when asked) with the limits of
    `settings`."""
    if implementation is None:
        implementation = "httptools" if HttpToolsProtocol is not None else "h11"
    guard, base = (
        (_GuardedHttpTools, HttpToolsProtocol)
        if implementation == "httptools"
        else (_GuardedH11, H11Protocol)
    )
    if base is None:
        raise RuntimeError("httptools is not installed; use implementation='h11'")
    attributes = {"max_head": settings.max_header_size, "head_timeout": settings.header_timeout}
    return type(f"Chatchat{base.__name__}", (guard, base), attributes)


def uvicorn_options(
    settings: ServerSettings, implementation: Implementation | None = None
) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` carrying the `server:` limits."""
    return {
        "http": guarded_protocol(settings, implementation),
        "h11_max_incomplete_event_size": settings.max_header_size,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "limit_concurrency": concurrency_limit(settings.max_connections),
    }


def concurrency_limit(max_connections: int | None) -> int | None:
    """uvicorn's `limit_concurrency` that serves `max_connections` connections at once.

    uvicorn answers 503 once the open connections, the asking one included, reach its limit,
    so a limit of N serves N - 1 (and 1 serves none)."""
    return None if max_connections is None else max_connections + 1
