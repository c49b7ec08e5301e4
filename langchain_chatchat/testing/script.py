"""Provider-neutral scripting types shared by every emulator.

A test enqueues `Reply` and `Fault` items; each request to an emulator takes the next item
(FIFO).  When the queue is empty the emulator's default `Responder` answers instead.  Every
request is recorded as a `RecordedRequest`, including when its client went away.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Fault", "RecordedRequest", "Reply", "Script", "ScriptItem", "ToolCallReply"]


@dataclass(frozen=True)
class ToolCallReply:
    """One tool call the model makes; ``arguments`` is a dict or an already-encoded JSON string."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        """Arguments as the JSON text on the wire (non-ASCII kept as is, as providers do)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """What the model says, exactly as the emulator will send it.

    Scripted replies are sent verbatim: the request's stop sequences and ``max_tokens`` are not
    applied to them (the default `Responder` applies those itself).

    * ``finish_reason``: ``None`` means "tool_calls" when there are tool calls, else "stop";
    * ``usage``: ``None`` means computed from the emulator's tokenizer; otherwise a mapping with
      ``input_tokens`` / ``output_tokens`` (and optionally ``reasoning_tokens`` and
      ``cached_tokens``, the prompt tokens read from the provider's cache);
    * ``first_chunk_delay`` / ``chunk_delay``: seconds before the first / each later streamed chunk
      (for non-streaming requests, ``first_chunk_delay`` delays the whole response);
    * ``drop_after_chunks``: close the TCP connection after that many streamed chunks, without a
      terminating chunk (a non-streaming response is cut in the middle of its body);
    * ``cumulative``: force cumulative (True) or incremental (False) streaming regardless of what
      the request asked for; ``None`` follows the request.
    """

    text: str = ""
    reasoning: str = ""
    tool_calls: Sequence[ToolCallReply] = ()
    finish_reason: str | None = None
    usage: Mapping[str, int] | None = None
    chunk_delay: float = 0.0
    first_chunk_delay: float = 0.0
    drop_after_chunks: int | None = None
    cumulative: bool | None = None

    @property
    def resolved_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True)
class Fault:
    """A scripted failure; build it with `Fault.http`, `Fault.stream_error` or `Fault.hang`."""

    kind: Literal["http", "stream_error", "hang"]
    status: int = 500
    code: str = ""
    message: str = ""
    after_chunks: int = 0
    seconds: float = 0.0

    @classmethod
    def http(cls, status: int, code: str, message: str) -> Fault:
        """Answer with this HTTP status and the provider's JSON error body."""
        return cls("http", status=status, code=code, message=message)

    @classmethod
    def stream_error(cls, after_chunks: int, code: str, message: str, status: int = 500) -> Fault:
        """Stream ``after_chunks`` normal chunks, then the provider's in-stream error event.

        A non-streaming request gets the same error as an HTTP error response.
        """
        return cls(
            "stream_error", status=status, code=code, message=message, after_chunks=after_chunks
        )

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Accept the request and send nothing for ``seconds`` (then answer normally)."""
        return cls("hang", seconds=seconds)


ScriptItem = Reply | Fault


@dataclass
class RecordedRequest:
    """One request as the emulator received it.

    Times are `time.monotonic()` values.  ``disconnected_at`` is set when the client went away
    before the response was complete (e.g. it stopped reading a stream or timed out);
    ``request_id`` is the id the emulator answered with.  Headers
    (which include the API key) are left out of the repr so that failing asserts don't print it.
    """

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: dict[str, Any] | None
    received_at: float
    disconnected_at: float | None = None
    request_id: str = ""

    def mark_disconnected(self) -> None:
        self.disconnected_at = time.monotonic()


class Script:
    """Thread-safe FIFO of scripted items: tests enqueue from their thread, the server pops."""

    def __init__(self) -> None:
        self._items: deque[ScriptItem] = deque()
        self._lock = threading.Lock()

    def enqueue(self, items: Iterable[ScriptItem]) -> None:
        with self._lock:
            self._items.extend(items)

    def pop(self) -> ScriptItem | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
