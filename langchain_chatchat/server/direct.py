"""Calling a chat model's worker directly when nothing would observe the call.

LangChain's `ainvoke`/`astream` wrap every call in run bookkeeping (a callback manager, run
ids, tracing payloads, merging every streamed chunk for `on_llm_end`). A gateway serving one
request after another with no callback and no tracer pays for that on every request, so the
dispatcher goes straight to the worker (`build_request` → `worker.ainvoke`/`astream` → the
message converters) — but only when LangChain itself would attach no handler.

That is decided from langchain-core's public API only: `AsyncCallbackManager.configure` with
the call's and the model's callbacks, tags, metadata and verbosity (which consults debug mode,
LangSmith tracing, tracing contexts and configure hooks exactly as the model's own call would),
plus the model's cache, rate limiter, output version and streaming switches. Anything else —
another runnable, a multimodal message LangChain would normalise first, a subclass with its own
generation hooks — takes LangChain's path. Callers get the same messages either way.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    convert_to_messages,
)
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.config import ensure_config, merge_configs
from langchain_core.utils.utils import LC_ID_PREFIX

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.messages import to_ai_chunk, to_ai_message
from langchain_chatchat.workers.types import ChatRequest

_HOOKS = ("_generate", "_agenerate", "_stream", "_astream")


@dataclass(frozen=True)
class DirectCall:
    """A call that may skip LangChain's bookkeeping: the model, messages and call options."""

    model: ChatchatChatModel
    messages: list[BaseMessage]
    kwargs: dict[str, Any]

    def request(self) -> ChatRequest:
        """The worker request (raises `BadRequestError` for options the model does not take)."""
        kwargs = dict(self.kwargs)
        stop = kwargs.pop("stop", None)
        return self.model.build_request(self.messages, stop, **kwargs)


def direct_call(
    runnable: Runnable,
    input: LanguageModelInput,
    config: RunnableConfig | None,
    kwargs: dict[str, Any],
    *,
    streaming: bool,
) -> DirectCall | None:
    """The direct form of `runnable.ainvoke/astream(input, config, **kwargs)`, or None when
    LangChain's path must run (something observes the call, or would change its result)."""
    model: Runnable = runnable
    bound_kwargs: dict[str, Any] = {}
    if isinstance(runnable, RunnableBinding):  # a model with bound tools / options
        if runnable.config_factories:
            return None
        model, bound_kwargs = runnable.bound, dict(runnable.kwargs)
        config = merge_configs(runnable.config, config)
    if not isinstance(model, ChatchatChatModel) or _overrides_hooks(type(model)):
        return None
    kwargs = {**bound_kwargs, **kwargs}
    if not _unobserved(model, ensure_config(config), kwargs, streaming=streaming):
        return None
    messages = _messages(input)
    return DirectCall(model, messages, kwargs) if messages is not None else None


def _overrides_hooks(cls: type[ChatchatChatModel]) -> bool:
    return any(getattr(cls, hook) is not getattr(ChatchatChatModel, hook) for hook in _HOOKS)


def _unobserved(
    model: ChatchatChatModel, config: RunnableConfig, kwargs: dict[str, Any], *, streaming: bool
) -> bool:
    if (
        model.rate_limiter is not None
        or model.output_version == "v1"
        or "stream" in kwargs
        or (model.disable_streaming if streaming else model.streaming)
    ):
        return False
    if not streaming and not (
        model.cache is False or (model.cache is None and get_llm_cache() is None)
    ):
        return False  # LangChain's path looks the reply up (or raises for a missing cache)
    manager = AsyncCallbackManager.configure(
        config.get("callbacks"),
        model.callbacks,
        model.verbose,
        config.get("tags"),
        model.tags,
        config.get("metadata"),
        model.metadata,
    )
    return not manager.handlers


def _messages(input: LanguageModelInput) -> list[BaseMessage] | None:
    """The input as messages, or None when LangChain would rewrite their content first
    (multimodal parts are normalised to standard content blocks on its path)."""
    if isinstance(input, PromptValue):
        messages = input.to_messages()
    elif isinstance(input, str):
        return [HumanMessage(input)]
    elif isinstance(input, Sequence):
        messages = convert_to_messages(input)
    else:
        return None
    return messages if all(isinstance(m.content, str) for m in messages) else None


def _run_id() -> str:
    """The id LangChain's run manager gives a reply ("lc_run-" + "-" + a run uuid)."""
    return f"{LC_ID_PREFIX}-{uuid.uuid4()}"


async def ainvoke(call: DirectCall) -> AIMessage:
    message = to_ai_message(await call.model.worker.ainvoke(call.request()), call.model.provider)
    if message.id is None:
        message.id = _run_id()
    return message


async def astream(call: DirectCall) -> AsyncGenerator[AIMessageChunk, None]:
    """The chunks LangChain's `astream` would yield: one id for all, the last one marked."""
    run_id, provider, last = _run_id(), call.model.provider, None
    deltas = call.model.worker.astream(call.request())
    try:
        async for delta in deltas:
            chunk = to_ai_chunk(delta, provider)
            if chunk.id is None:
                chunk.id = run_id
            last = chunk
            yield chunk
    finally:
        await deltas.aclose()  # closes the upstream stream now
    if last is None:
        raise ValueError("No generation chunks were returned")
    if not last.chunk_position:
        empty: Any = "" if isinstance(last.content, str) else []
        yield AIMessageChunk(content=empty, chunk_position="last", id=run_id)
