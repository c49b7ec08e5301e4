"""Provider-neutral plumbing for the emulators: a loopback uvicorn server and a timed response.

`BackgroundServer` runs any ASGI app on 127.0.0.1 (ephemeral port) in a daemon thread so that
synchronous and asynchronous clients can both talk to it from a test.  `TimedResponse` is the
one piece of wire behaviour every emulator needs: send a body in timed pieces, notice when the
client goes away, and optionally cut the TCP connection mid-body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import Self

from langchain_chatchat.testing.script import Fault, RecordedRequest, Reply, Script, ScriptItem

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["AbortConnection", "BackgroundServer", "EmulatorBase", "TimedResponse"]

_START_TIMEOUT = 5.0


class AbortConnection(Exception):
    """Raised inside a response to make uvicorn drop the connection without finishing the body."""


class _HideAborts(logging.Filter):
    """Deliberate aborts are test behaviour, not server errors: keep them out of the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], AbortConnection))


_uvicorn_error_logger = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _HideAborts) for f in _uvicorn_error_logger.filters):
    _uvicorn_error_logger.addFilter(_HideAborts())


class _Server(uvicorn.Server):
    """uvicorn polls `should_exit` every 100 ms; waiting on an event makes `stop()` prompt."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stop_event: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        while not await self.on_tick(0):  # on_tick(0) also refreshes the Date header
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=1.0)
            if self.stop_event.is_set():
                return


class _Running(ABC):
    """`with server:` starts it and stops it at the end of the block."""

    @abstractmethod
    def start(self, port: int = 0) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class BackgroundServer(_Running):
    """Serve an ASGI app on 127.0.0.1 from a daemon thread; usable as a context manager."""

    def __init__(self, app: ASGIApp, *, graceful_shutdown: float = 0.5) -> None:
        self._app = app
        self._graceful_shutdown = graceful_shutdown
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:54321``."""
        if self._port is None:
            raise RuntimeError("server is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, port: int = 0) -> Self:
        """Listen on 127.0.0.1:`port` (0: a free port, see `url`)."""
        if self.running:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Without TCP_NODELAY, requests on reused keep-alive connections stall ~40 ms (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            http="h11",
            loop="asyncio",
            lifespan="auto",  # as under `uvicorn`: the app's shutdown closes what it opened
            ws="none",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=math.ceil(self._graceful_shutdown),
        )
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="emulator-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not (self._server.started and self._server.stop_event is not None):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("emulator server failed to start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        if server.loop is not None and server.stop_event is not None:
            server.loop.call_soon_threadsafe(server.stop_event.set)
        else:
            server.should_exit = True
        thread.join(timeout=self._graceful_shutdown + 5)
        self._server = self._thread = None
        self._port = None


class TimedResponse:
    """An ASGI response played piece by piece, with disconnect detection and optional abort.

    * ``hang``: seconds to wait before sending anything (stops early if the client leaves);
    * ``pieces``: ``(delay, bytes)`` pairs, each sent after its delay;
    * ``abort_after``: drop the connection after that many pieces instead of finishing;
    * ``on_disconnect``: called once if the client goes away before the body is complete.
    """

    def __init__(
        self,
        status: int,
        headers: Sequence[tuple[str, str]],
        pieces: Iterable[tuple[float, bytes]],
        *,
        hang: float = 0.0,
        abort_after: int | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.pieces = pieces
        self.hang = hang
        self.abort_after = abort_after
        self.on_disconnect = on_disconnect

    @classmethod
    def stream(
        cls,
        headers: Sequence[tuple[str, str]],
        frames: Sequence[bytes],
        reply: Reply,
        record: RecordedRequest,
        *,
        hang: float,
    ) -> TimedResponse:
        """A 200 stream of `frames` paced by `reply`'s chunk delays and cut where it says."""
        pieces = [
            (reply.first_chunk_delay if i == 0 else reply.chunk_delay, frame)
            for i, frame in enumerate(frames)
        ]
        return cls(
            200,
            headers,
            pieces,
            hang=hang,
            abort_after=reply.drop_after_chunks,
            on_disconnect=record.mark_disconnected,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()
        finished = False

        async def watch() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    if not finished:
                        gone.set()
                        if self.on_disconnect is not None:
                            self.on_disconnect()
                    return

        async def pause(seconds: float) -> bool:
            """Sleep, returning early (True) if the client disconnected."""
            if seconds > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(gone.wait(), timeout=seconds)
            return gone.is_set()

        watcher = asyncio.create_task(watch())
        try:
            if await pause(self.hang):
                return
            await send(
                {"type": "http.response.start", "status": self.status, "headers": self.headers}
            )
            for sent, (delay, body) in enumerate(self.pieces):
                if sent == self.abort_after:
                    raise AbortConnection
                if await pause(delay):
                    return
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if self.abort_after is not None:
                raise AbortConnection
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()


class EmulatorBase(_Running):
    """Lifecycle, scripting and request log shared by the emulators.

    A subclass builds its ASGI app and calls `_serve(app)`; its handlers call `_record` once per
    request and `_take` for the next scripted item.
    """

    def __init__(self) -> None:
        self._script = Script()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: BackgroundServer | None = None

    def _serve(self, app: ASGIApp) -> None:
        self._server = BackgroundServer(app)

    @property
    def url(self) -> str:
        """The server root, ``http://127.0.0.1:PORT``."""
        assert self._server is not None
        return self._server.url

    def start(self, port: int = 0) -> Self:
        assert self._server is not None
        self._server.start(port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def enqueue(self, *items: ScriptItem) -> None:
        """Script the next requests' outcomes, in order."""
        self._script.enqueue(items)

    @property
    def pending(self) -> int:
        """Scripted items not consumed yet."""
        return len(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request_id(self) -> str | None:
        """The request id the emulator put in its latest answer."""
        with self._lock:
            return self._requests[-1].request_id if self._requests else None

    def reset(self) -> None:
        """Forget scripted items and recorded requests."""
        self._script.clear()
        with self._lock:
            self._requests.clear()

    async def _record(self, request: Request, request_id: str) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            body=body if isinstance(body, dict) else None,
            received_at=time.monotonic(),
            request_id=request_id,
        )
        with self._lock:
            self._requests.append(record)
        return record

    def _take(self) -> tuple[ScriptItem | None, float]:
        """The next scripted item, and the seconds to hang first (a `Fault.hang` is consumed here)."""
        item = self._script.pop()
        if isinstance(item, Fault) and item.kind == "hang":
            return None, item.seconds
        return item, 0.0
