"""The provider-neutral worker.

A provider subclass declares its message rules and implements two transport methods
(`_call`, `_acall`) that yield incremental `ChatDelta`s and raise typed `ChatchatError`s.
Everything shared — message validation, retries, accumulation, embedding batching — is here,
once. This module knows no provider, no LangChain and no HTTP framework.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import ClassVar, Literal

from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.retry import (
    RetryPolicy,
    aretry_call,
    aretry_stream,
    retry_call,
    retry_stream,
)
from langchain_chatchat.workers.streaming import ResultBuilder
from langchain_chatchat.workers.types import (
    ChatDelta,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
    Usage,
    WorkerMessage,
    WorkerResult,
)


@dataclass(frozen=True)
class MessageRules:
    """What a provider accepts in a conversation, applied by `ChatWorker.validate_messages`.

    - system: "first" — system turns only at the start (several are merged into one);
      "fold" — no system role, so the text is prepended to the first user turn.
    - merge_consecutive: merge back-to-back user (or assistant) turns instead of sending them.
    - alternate: after the system turn, turns must alternate user/assistant, starting with user
      (tool turns count as part of the assistant's step).
    - images: whether image parts are accepted; otherwise they are rejected, not dropped.
    """

    system: Literal["first", "fold"] = "first"
    merge_consecutive: bool = False
    alternate: bool = False
    tools: bool = True
    images: bool = False


class WorkerBase:
    """Settings shared by chat and embedding workers."""

    provider: ClassVar[str] = "base"

    def __init__(self, *, timeout: float | None = 60.0, max_retries: int = 2) -> None:
        self.timeout = timeout
        self.retry_policy = RetryPolicy(max_retries=max_retries)

    def __repr__(self) -> str:  # never show credentials a subclass may hold
        return f"{type(self).__name__}(timeout={self.timeout}, max_retries={self.retry_policy.max_retries})"


class ChatWorker(WorkerBase, ABC):
    """Translate a `ChatRequest` into one provider's API and its replies into deltas."""

    message_rules: ClassVar[MessageRules] = MessageRules()

    # -- to implement per provider -------------------------------------------------------
    @abstractmethod
    def _call(self, request: ChatRequest) -> Iterator[ChatDelta]:
        """Make one request; yield incremental deltas (one for non-streaming requests)."""

    @abstractmethod
    def _acall(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """Async twin of `_call`, with a truly async transport (no thread pool)."""

    # -- public API ------------------------------------------------------------------------
    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]:
        request = self.prepare(replace(request, stream=True))
        return retry_stream(self.retry_policy, lambda: self._call(request))

    def astream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        request = self.prepare(replace(request, stream=True))
        return aretry_stream(self.retry_policy, lambda: self._acall(request))

    def invoke(self, request: ChatRequest) -> WorkerResult:
        request = self.prepare(replace(request, stream=False))
        builder = ResultBuilder()
        for delta in retry_stream(self.retry_policy, lambda: self._call(request)):
            builder.add(delta)
        return builder.build()

    async def ainvoke(self, request: ChatRequest) -> WorkerResult:
        request = self.prepare(replace(request, stream=False))
        builder = ResultBuilder()
        async for delta in aretry_stream(self.retry_policy, lambda: self._acall(request)):
            builder.add(delta)
        return builder.build()

    # -- translation hooks -----------------------------------------------------------------
    def prepare(self, request: ChatRequest) -> ChatRequest:
        """Validate a request before any network traffic, so bad input fails fast and typed."""
        if request.tools and not self.message_rules.tools:
            raise BadRequestError(
                f"{self.provider} does not support tool calling",
                provider=self.provider,
                param="tools",
            )
        return replace(request, messages=self.validate_messages(request.messages))

    def validate_messages(self, messages: list[WorkerMessage]) -> list[WorkerMessage]:
        """Apply this provider's `message_rules`; override to add provider-specific checks."""
        rules = self.message_rules
        if not messages:
            raise self._bad_messages("at least one message is required")
        messages = self._place_system(messages, rules)
        for message in messages:
            self._check_message(message, rules)
        if rules.merge_consecutive:
            messages = _merge_consecutive(messages)
        if rules.alternate:
            self._check_alternation(messages)
        return messages

    def _place_system(
        self, messages: list[WorkerMessage], rules: MessageRules
    ) -> list[WorkerMessage]:
        leading = 0
        while leading < len(messages) and messages[leading].role == "system":
            leading += 1
        if any(m.role == "system" for m in messages[leading:]):
            raise self._bad_messages(
                "a system message may only appear at the start of the conversation; "
                "put all instructions in the first system message"
            )
        if leading == 0:
            return messages
        system_text = "\n\n".join(m.text() for m in messages[:leading])
        rest = messages[leading:]
        if rules.system == "first":
            return [WorkerMessage(role="system", content=system_text), *rest]
        if not rest or rest[0].role != "user":
            return [WorkerMessage(role="user", content=system_text), *rest]
        first = rest[0]
        return [replace(first, content=f"{system_text}\n\n{first.text()}"), *rest[1:]]

    def _check_message(self, message: WorkerMessage, rules: MessageRules) -> None:
        if message.role == "tool" or message.tool_calls:
            if not rules.tools:
                raise self._bad_messages("tool messages are not supported by this provider")
            if message.role == "tool" and not message.tool_call_id:
                raise self._bad_messages("a tool message needs the tool_call_id it answers")
        if isinstance(message.content, list) and not rules.images:
            kinds = {str(part.get("type")) for part in message.content} - {"text"}
            if kinds:
                raise self._bad_messages(
                    f"{self.provider} text models accept only text content, got {sorted(kinds)}"
                )

    def _check_alternation(self, messages: list[WorkerMessage]) -> None:
        """User and assistant alternate; tool results and the assistant's answer to them belong
        to the assistant's step (user → assistant(tool_calls) → tool… → assistant → user)."""
        expected, previous = "user", "system"
        for message in messages:
            role = message.role
            if role == "system":
                continue
            in_tool_step = role == "tool" or (role == "assistant" and previous == "tool")
            if not in_tool_step and role != expected:
                raise self._bad_messages(
                    f"{self.provider} needs turns alternating user/assistant starting with user; "
                    f"got {role} where {expected} was expected"
                )
            if role == "tool" and previous not in ("assistant", "tool"):
                raise self._bad_messages(
                    "a tool message must follow the assistant message that called the tool"
                )
            expected = "assistant" if role == "user" else "user"
            previous = role

    def _bad_messages(self, message: str) -> BadRequestError:
        return BadRequestError(message, provider=self.provider, param="messages")


def _merge_consecutive(messages: list[WorkerMessage]) -> list[WorkerMessage]:
    merged: list[WorkerMessage] = []
    for message in messages:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and message.role == previous.role
            and message.role in ("user", "assistant")
            and not previous.tool_calls
            and not message.tool_calls
        ):
            merged[-1] = replace(previous, content=f"{previous.text()}\n\n{message.text()}")
        else:
            merged.append(message)
    return merged


class EmbeddingWorker(WorkerBase, ABC):
    """Batch texts to the provider's limit, keep input order, retry batches independently."""

    default_batch_size: ClassVar[int] = 16
    max_concurrent_batches: ClassVar[int] = 4

    def batch_limit(self, model: str) -> int:
        """The most texts one request may carry for `model`."""
        return self.default_batch_size

    @abstractmethod
    def _embed_batch(self, request: EmbeddingRequest) -> EmbeddingResult: ...

    @abstractmethod
    async def _aembed_batch(self, request: EmbeddingRequest) -> EmbeddingResult: ...

    def embed(self, request: EmbeddingRequest, batch_size: int | None = None) -> EmbeddingResult:
        results = [
            retry_call(self.retry_policy, partial(self._embed_batch, batch))
            for batch in self._batches(request, batch_size)
        ]
        return _join(results, request.model)

    async def aembed(
        self, request: EmbeddingRequest, batch_size: int | None = None
    ) -> EmbeddingResult:
        gate = asyncio.Semaphore(self.max_concurrent_batches)

        async def run(batch: EmbeddingRequest) -> EmbeddingResult:
            async with gate:
                return await aretry_call(self.retry_policy, lambda: self._aembed_batch(batch))

        results = await asyncio.gather(*(run(b) for b in self._batches(request, batch_size)))
        return _join(list(results), request.model)

    def _batches(self, request: EmbeddingRequest, batch_size: int | None) -> list[EmbeddingRequest]:
        limit = self.batch_limit(request.model)
        size = min(batch_size or limit, limit)
        return [
            replace(request, texts=request.texts[i : i + size])
            for i in range(0, len(request.texts), size)
        ]


def _join(results: list[EmbeddingResult], model: str) -> EmbeddingResult:
    vectors = [vector for result in results for vector in result.vectors]
    usage = Usage()
    for result in results:
        if result.usage:
            usage.input_tokens += result.usage.input_tokens
            usage.total_tokens += result.usage.total_tokens
    return EmbeddingResult(
        vectors=vectors,
        usage=usage,
        request_id=results[-1].request_id if results else None,
        model=model,
    )
