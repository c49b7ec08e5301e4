"""Turning provider streams into incremental deltas, and deltas back into whole results."""

from __future__ import annotations

import logging

from langchain_chatchat.workers.types import ChatDelta, ToolCallDelta, WorkerResult, WorkerToolCall

logger = logging.getLogger(__name__)


def _new_suffix(previous: str, current: str) -> str:
    """What `current` adds to `previous`: the part past `previous`'s length (never a
    `str.replace`, which would swallow repeated text such as "ha" + "ha"). When a provider
    rewrites earlier text (rare, e.g. after a filter) only the part past the common prefix is
    new to the caller."""
    if current.startswith(previous):
        return current[len(previous) :]
    common = 0
    for a, b in zip(previous, current, strict=False):
        if a != b:
            break
        common += 1
    logger.debug("cumulative stream rewrote earlier output at offset %d", common)
    return current[common:]


class ToolCallHeaders:
    """Keeps a tool call's id and name on its first piece only.

    Some providers repeat them on every streamed piece; LangChain concatenates repeated
    strings when it adds chunks ("addadd"), so later repeats are dropped here.
    """

    def __init__(self) -> None:
        self._announced: set[int] = set()

    def dedupe(self, pieces: list[ToolCallDelta]) -> list[ToolCallDelta]:
        kept = []
        for piece in pieces:
            if piece.index in self._announced:
                if not piece.arguments:
                    continue
                piece = ToolCallDelta(index=piece.index, arguments=piece.arguments)
            else:
                self._announced.add(piece.index)
            kept.append(piece)
        return kept


class CumulativeToIncremental:
    """Converts chunks that repeat the whole output so far into incremental deltas.

    Providers that send cumulative text (DashScope without `incremental_output`, several
    Chinese providers' legacy APIs) go through this exactly once, in their worker.
    """

    def __init__(self) -> None:
        self._text = ""
        self._reasoning = ""
        self._arguments: dict[int, str] = {}

    def convert(self, cumulative: ChatDelta) -> ChatDelta:
        text = _new_suffix(self._text, cumulative.text)
        reasoning = _new_suffix(self._reasoning, cumulative.reasoning)
        self._text, self._reasoning = cumulative.text, cumulative.reasoning
        tool_calls = []
        for call in cumulative.tool_calls:
            arguments = _new_suffix(self._arguments.get(call.index, ""), call.arguments)
            self._arguments[call.index] = call.arguments
            tool_calls.append(
                ToolCallDelta(index=call.index, id=call.id, name=call.name, arguments=arguments)
            )
        return ChatDelta(
            text=text,
            reasoning=reasoning,
            tool_calls=tool_calls,
            finish_reason=cumulative.finish_reason,
            usage=cumulative.usage,
            request_id=cumulative.request_id,
            model=cumulative.model,
            metadata=cumulative.metadata,
        )


class ResultBuilder:
    """Sums incremental deltas into one WorkerResult (used for non-streaming invocations)."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, list] = {}
        self.result = WorkerResult()

    def add(self, delta: ChatDelta) -> None:
        if delta.text:
            self._text.append(delta.text)
        if delta.reasoning:
            self._reasoning.append(delta.reasoning)
        for piece in delta.tool_calls:
            call = self._calls.setdefault(piece.index, [None, None, []])
            call[0] = call[0] or piece.id
            call[1] = call[1] or piece.name
            call[2].append(piece.arguments)
        result = self.result
        result.finish_reason = delta.finish_reason or result.finish_reason
        result.usage = delta.usage or result.usage
        result.request_id = result.request_id or delta.request_id
        result.model = delta.model or result.model
        if delta.metadata:
            result.metadata.update(delta.metadata)

    def build(self) -> WorkerResult:
        result = self.result
        result.text = "".join(self._text)
        result.reasoning = "".join(self._reasoning)
        result.tool_calls = [
            WorkerToolCall(
                id=call_id or f"call_{index}", name=name or "", arguments="".join(args) or "{}"
            )
            for index, (call_id, name, args) in sorted(self._calls.items())
        ]
        return result
