"""Server-sent events for chat and legacy completions.

A stream is started, and its first chunk awaited, *before* the HTTP response begins: a failure
at that point (a 429 from the provider, say) then reaches the client as a normal error status
it can retry on. Once chunks flow, a failure can only be reported in-band, as one OpenAI-shaped
`data: {"error": ...}` event, after which the stream ends without `[DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
from langchain_core.messages import AIMessageChunk
from langchain_core.messages.ai import UsageMetadata, add_usage
from starlette.responses import StreamingResponse

from langchain_chatchat.server.openai.errors import stream_error_event
from langchain_chatchat.server.openai.messages import finish_reason

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class ChunkStream:
    """The model's chunks, already started, remembering what the closing events need."""

    def __init__(self, first: AIMessageChunk | None, rest: AsyncIterator[AIMessageChunk]) -> None:
        self._first = first
        self._rest = rest
        self.usage: UsageMetadata | None = None
        self.finish_reason: str | None = None
        self.saw_tool_calls = False

    @classmethod
    async def start(cls, chunks: AsyncIterator[AIMessageChunk]) -> ChunkStream:
        """Wait for the first chunk, so failures before any output raise here, not mid-response."""
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = None
        return cls(first, chunks)

    async def __aiter__(self) -> AsyncIterator[AIMessageChunk]:
        try:
            if self._first is not None:
                yield self._note(self._first)
                async for chunk in self._rest:
                    yield self._note(chunk)
        finally:
            await self._rest.aclose()  # type: ignore[attr-defined]  # closes the upstream stream

    def _note(self, chunk: AIMessageChunk) -> AIMessageChunk:
        if chunk.usage_metadata:
            self.usage = add_usage(self.usage, chunk.usage_metadata)
        self.finish_reason = finish_reason(chunk) or self.finish_reason
        self.saw_tool_calls = self.saw_tool_calls or bool(chunk.tool_call_chunks)
        return chunk

    def default_finish_reason(self) -> str:
        """For a model that ended without saying why."""
        return "tool_calls" if self.saw_tool_calls else "stop"


def sse_response(payloads: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    return StreamingResponse(
        _events(payloads), media_type="text/event-stream", headers=_SSE_HEADERS
    )


async def _events(payloads: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    try:
        async for payload in payloads:
            yield b"data: " + dumps(payload) + b"\n\n"
    except Exception as error:  # reported in-band: the status line is already sent
        yield stream_error_event(error)
        return
    yield b"data: [DONE]\n\n"


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON (orjson: ~10x faster than the stdlib on chunks and embeddings)."""
    try:
        return orjson.dumps(payload)
    except TypeError:  # what orjson refuses (non-string keys, huge ints): the stdlib's verdict
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
