"""How a worker's bytes reach a provider: one `Transport` protocol, its implementations, SSE.

A worker builds an `HTTPRequest` (URL, query, headers, JSON-encoded body) and hands it to a
transport, which answers with the status, headers and body bytes (`post`) or with the body as
it arrives (`stream`); `sse_data` turns that byte stream into the `data` of each server-sent
event. Workers therefore translate (payload in, deltas out) without knowing which HTTP library
runs underneath, and tests swap in `MockTransport` to check translation without sockets.

`HTTPTransport` is the default: httpx for sync calls and aiohttp for async ones, each pooling
connections. aiohttp serves the async path because it is the server's hot path: httpx's pool
costs about ten times more CPU per request at 16 concurrent streams (benchmarks/gateway.py).
Library exceptions become `UpstreamTimeoutError` / `UpstreamConnectionError` here, so the
workers see only typed errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Protocol, TypedDict

import aiohttp
import httpx

from langchain_chatchat.workers.errors import UpstreamConnectionError, UpstreamTimeoutError


@dataclass(frozen=True)
class HTTPRequest:
    """One POST with a JSON body, already encoded."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyHead:
    """Status and headers (case-insensitive where the library gives them so)."""

    status: int
    headers: Mapping[str, str]

    @property
    def is_event_stream(self) -> bool:
        return self.status < 400 and "text/event-stream" in (self.headers.get("content-type") or "")


@dataclass(frozen=True)
class HTTPReply(ReplyHead):
    """A whole reply."""

    body: bytes


@dataclass(frozen=True)
class StreamingReply(ReplyHead):
    """A reply whose body is read as it arrives (`chunks`), for SSE."""

    chunks: Iterator[bytes]

    def read(self) -> bytes:
        return b"".join(self.chunks)


@dataclass(frozen=True)
class AsyncStreamingReply(ReplyHead):
    chunks: AsyncIterator[bytes]

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks])


class Transport(Protocol):
    """Sends `HTTPRequest`s; raises only `UpstreamTimeoutError` / `UpstreamConnectionError`."""

    def post(self, request: HTTPRequest) -> HTTPReply: ...

    def stream(self, request: HTTPRequest) -> contextlib.AbstractContextManager[StreamingReply]: ...

    async def apost(self, request: HTTPRequest) -> HTTPReply: ...

    def astream(
        self, request: HTTPRequest
    ) -> contextlib.AbstractAsyncContextManager[AsyncStreamingReply]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


# -- SSE ---------------------------------------------------------------------------------------
class SSEDecoder:
    """The `data` of each server-sent event in a byte stream, multi-line data joined by newlines.

    Fields other than `data` are not used by the streams we read and are skipped; an event cut
    off before its blank line is dropped, as the SSE spec says.
    """

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._rest = b""

    def feed(self, piece: bytes) -> list[bytes]:
        lines = (self._rest + piece if self._rest else piece).split(b"\n")
        self._rest = lines.pop()  # the unfinished last line
        events: list[bytes] = []
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                if self._data:
                    data = self._data
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    self._data = []
            elif line[:5] == b"data:":
                value = line[5:]
                self._data.append(value[1:] if value[:1] == b" " else value)
        return events


def sse_data(chunks: Iterable[bytes]) -> Iterator[bytes]:
    decoder = SSEDecoder()
    for piece in chunks:
        yield from decoder.feed(piece)


async def asse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    decoder = SSEDecoder()
    async for piece in chunks:
        for data in decoder.feed(piece):
            yield data


# -- httpx (sync) + aiohttp (async) -----------------------------------------------------------
class HTTPTransport:
    """Pooled httpx (sync) and aiohttp (async) clients with one timeout policy.

    `timeout` bounds connecting and every wait for data, never a whole reply, so a long stream
    that keeps sending is never cut; `connect_timeout` overrides the connect part. The httpx
    client is shared by threads; aiohttp sessions are per event loop (pooled connections must
    not cross loops) and are closed by `aclose`, or when their loop shuts down its async
    generators (as `asyncio.run` does), so no session outlives its loop unclosed.
    """

    def __init__(
        self, name: str, *, timeout: float | None = 60.0, connect_timeout: float | None = None
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    @property
    def _connect(self) -> float | None:
        return self.timeout if self.connect_timeout is None else self.connect_timeout

    # -- sync ----------------------------------------------------------------------------------
    def _httpx(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                timeout = httpx.Timeout(self.timeout, connect=self._connect)
                self._client = httpx.Client(timeout=timeout)
            return self._client

    def _httpx_request(self, request: HTTPRequest) -> httpx.Request:
        headers = _with_content_type(request.headers)
        return self._httpx().build_request(
            "POST", request.url, content=request.body, headers=headers, params=request.params
        )

    def post(self, request: HTTPRequest) -> HTTPReply:
        with self._errors():
            response = self._httpx().send(self._httpx_request(request))
        return HTTPReply(response.status_code, response.headers, response.content)

    @contextlib.contextmanager
    def stream(self, request: HTTPRequest) -> Iterator[StreamingReply]:
        with self._errors():
            response = self._httpx().send(self._httpx_request(request), stream=True)
            try:
                yield StreamingReply(response.status_code, response.headers, response.iter_raw())
            finally:
                response.close()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- async ---------------------------------------------------------------------------------
    async def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)
        if entry is not None and not entry[0].closed:
            return entry[0]
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), cookie_jar=aiohttp.DummyCookieJar()
        )
        guard = closing_at_loop_shutdown(session.close)
        await anext(guard)  # registers it with the loop's async-generator shutdown
        self._sessions[loop] = (session, guard)
        return session

    def _aiohttp_options(self, request: HTTPRequest) -> _AiohttpOptions:
        return {
            "data": request.body,
            "headers": _with_content_type(request.headers),
            "params": dict(request.params) or None,
            "timeout": aiohttp.ClientTimeout(
                total=None,
                connect=self._connect,
                sock_connect=self._connect,
                sock_read=self.timeout,
            ),
        }

    async def apost(self, request: HTTPRequest) -> HTTPReply:
        session = await self._session()
        with self._errors():
            async with session.post(request.url, **self._aiohttp_options(request)) as response:
                return HTTPReply(response.status, response.headers, await response.read())

    @contextlib.asynccontextmanager
    async def astream(self, request: HTTPRequest) -> AsyncIterator[AsyncStreamingReply]:
        session = await self._session()
        with self._errors():
            async with session.post(request.url, **self._aiohttp_options(request)) as response:
                yield AsyncStreamingReply(
                    response.status, response.headers, response.content.iter_any()
                )

    async def aclose(self) -> None:
        entry = self._sessions.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # runs the guard's `finally`: closes the session

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (httpx.TimeoutException, TimeoutError) as error:  # aiohttp's are TimeoutErrors
            raise UpstreamTimeoutError(
                f"{self.name} did not answer in time ({type(error).__name__})", provider=self.name
            ) from error
        except (httpx.TransportError, aiohttp.ClientError) as error:
            raise UpstreamConnectionError(
                f"{self.name} connection failed ({type(error).__name__})", provider=self.name
            ) from error


class _AiohttpOptions(TypedDict):
    data: bytes
    headers: dict[str, str]
    params: dict[str, str] | None
    timeout: aiohttp.ClientTimeout


def _with_content_type(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` with a JSON content type unless they name one (in any letter case)."""
    if any(name.lower() == "content-type" for name in headers):
        return dict(headers)
    return {"Content-Type": "application/json", **headers}


async def closing_at_loop_shutdown(
    close: Callable[[], Awaitable[object]],
) -> AsyncGenerator[None, None]:
    """Suspended once started (`await anext(guard)`); the loop's `shutdown_asyncgens()` (as
    `asyncio.run` and pytest-asyncio do) or the guard's `aclose()` runs its `finally`, so
    `close()` (an aiohttp session's, say) runs on its own loop before that loop closes."""
    try:
        yield
    finally:
        await close()


# -- tests -------------------------------------------------------------------------------------
@dataclass
class MockReply:
    """What a `MockTransport` handler answers: a status, headers and the body in pieces."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | Sequence[bytes] = b""

    @classmethod
    def json(cls, document: object, status: int = 200, **headers: str) -> MockReply:
        return cls(
            status, {"content-type": "application/json", **headers}, json.dumps(document).encode()
        )

    @classmethod
    def sse(cls, *events: object, status: int = 200, **headers: str) -> MockReply:
        """One `data:` event per item (dicts JSON-encoded, strings sent as they are)."""
        pieces = [
            f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n".encode()
            for event in events
        ]
        return cls(status, {"content-type": "text/event-stream", **headers}, pieces)

    def pieces(self) -> list[bytes]:
        return [self.body] if isinstance(self.body, bytes) else list(self.body)


class MockTransport:
    """A transport that calls `handler(request)` instead of the network (like httpx's
    MockTransport); the handler returns a `MockReply` or raises. Requests are recorded."""

    def __init__(self, handler: Callable[[HTTPRequest], MockReply | Awaitable[MockReply]]) -> None:
        self.handler = handler
        self.requests: list[HTTPRequest] = []

    def _reply(self, request: HTTPRequest) -> MockReply:
        self.requests.append(request)
        reply = self.handler(request)
        if not isinstance(reply, MockReply):
            raise TypeError("a sync call needs a handler that returns a MockReply")
        return reply

    async def _areply(self, request: HTTPRequest) -> MockReply:
        self.requests.append(request)
        reply = self.handler(request)
        return await reply if not isinstance(reply, MockReply) else reply

    def post(self, request: HTTPRequest) -> HTTPReply:
        reply = self._reply(request)
        return HTTPReply(reply.status, _lower(reply.headers), b"".join(reply.pieces()))

    @contextlib.contextmanager
    def stream(self, request: HTTPRequest) -> Iterator[StreamingReply]:
        reply = self._reply(request)
        yield StreamingReply(reply.status, _lower(reply.headers), iter(reply.pieces()))

    async def apost(self, request: HTTPRequest) -> HTTPReply:
        reply = await self._areply(request)
        return HTTPReply(reply.status, _lower(reply.headers), b"".join(reply.pieces()))

    @contextlib.asynccontextmanager
    async def astream(self, request: HTTPRequest) -> AsyncIterator[AsyncStreamingReply]:
        reply = await self._areply(request)
        yield AsyncStreamingReply(reply.status, _lower(reply.headers), _aiter(reply.pieces()))

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


async def _aiter(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
