"""What both protocols call: a model name's `ReplicaPool` behind a chat-model or embeddings face.

`ChatDispatcher` is a LangChain `Runnable`, so LangServe serves it as it is and the OpenAI
router calls the same `ainvoke`/`astream`: one code path for both protocols. Each call runs on
a replica's runnable, or straight on its worker when nothing observes the call (direct.py).
Its `astream` hands back the pool's own generator (no extra layer per chunk). Model fallbacks are LangChain's
`with_fallbacks`, triggered only by errors another model can help with (busy, down, timed out).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, cast

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from pydantic import BaseModel

from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.server import direct
from langchain_chatchat.server.metrics import ModelStats
from langchain_chatchat.server.pool import Replica, ReplicaPool
from langchain_chatchat.workers.errors import (
    BadRequestError,
    RateLimitError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

FALLBACK_ERRORS: tuple[type[Exception], ...] = (
    RateLimitError,
    UpstreamUnavailableError,
    UpstreamTimeoutError,
)
"""Errors after which a fallback model is tried: the primary is busy, down or too slow."""


class ChatDispatcher(Runnable[LanguageModelInput, BaseMessage]):
    """A chat model name: each call runs on one of its replicas, chosen by the pool."""

    def __init__(self, pool: ReplicaPool, runnables: Sequence[Runnable] | None = None) -> None:
        self.pool = pool
        self.name = pool.name
        self._runnables: tuple[Runnable, ...] = (
            tuple(runnables) if runnables is not None else tuple(r.model for r in pool.replicas)
        )
        """What runs on each replica, by replica index: its model, or that model with tools."""

    @property
    def InputType(self) -> Any:
        return self._runnables[0].InputType

    @property
    def OutputType(self) -> Any:
        return self._runnables[0].OutputType

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        return self._runnables[self.pool.pick_now().index].invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        runnables = self._runnables

        def attempt(replica: Replica) -> Awaitable[BaseMessage]:
            runnable = runnables[replica.index]
            call = direct.direct_call(runnable, input, config, kwargs, streaming=False)
            return direct.ainvoke(call) if call else runnable.ainvoke(input, config, **kwargs)

        return await self.pool.call(attempt)

    def astream(  # returns the pool's generator rather than wrapping it
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncGenerator[BaseMessage, None]:
        runnables = self._runnables

        def start(replica: Replica) -> AsyncGenerator[BaseMessage, None]:
            runnable = runnables[replica.index]
            call = direct.direct_call(runnable, input, config, kwargs, streaming=True)
            if call is not None:
                return direct.astream(call)
            # Runnable.astream is an async generator function, typed as returning an iterator.
            return cast(
                AsyncGenerator[BaseMessage, None], runnable.astream(input, config, **kwargs)
            )

        return self.pool.stream(start)

    def bind_tools(self, tools: Sequence[Any], **options: Any) -> ChatDispatcher:
        """The same pool, with `tools` bound by each replica's own model (which knows how its
        provider wants them). Raises what `bind_tools` raises for a bad `tool_choice`."""
        bound = []
        for runnable in self._runnables:
            bind_tools = getattr(runnable, "bind_tools", None)
            if bind_tools is None:
                raise BadRequestError(f"The model '{self.name}' cannot call tools", param="tools")
            bound.append(bind_tools(tools, **options))
        return ChatDispatcher(self.pool, bound)


def with_fallbacks(primary: ChatDispatcher, fallbacks: Sequence[ChatDispatcher]) -> Runnable:
    """`primary`, then each fallback in turn when the one before cannot answer."""
    if not fallbacks:
        return primary
    return primary.with_fallbacks(fallbacks, exceptions_to_handle=FALLBACK_ERRORS)


class EmbeddingsDispatcher:
    """An embeddings model name: each call runs on one of its replicas, chosen by the pool."""

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool

    async def aembed(
        self, texts: list[str], dimensions: int | None = None
    ) -> tuple[list[list[float]], int]:
        """Document vectors and prompt tokens (0 when the model cannot tell)."""
        name = self.pool.name
        return await self.pool.call(
            lambda replica: _embed(_with_dimensions(replica.model, name, dimensions), texts)
        )

    def as_runnable(self) -> Runnable[list[str], list[list[float]]]:
        """Texts → vectors, for LangServe."""

        def embed(texts: list[str]) -> list[list[float]]:
            return self.pool.replicas[self.pool.pick_now().index].model.embed_documents(texts)

        async def aembed(texts: list[str]) -> list[list[float]]:
            return (await self.aembed(texts))[0]

        return RunnableLambda(embed, afunc=aembed, name=self.pool.name).with_types(
            input_type=list[str], output_type=list[list[float]]
        )


async def _embed(model: Embeddings, texts: list[str]) -> tuple[list[list[float]], int]:
    # ChatchatEmbeddings, and the ingress face of a Ray Serve deployment, report usage too.
    if isinstance(model, ChatchatEmbeddings) or hasattr(model, "aembed_with_usage"):
        result = await model.aembed_with_usage(texts)  # type: ignore[attr-defined]
        return result.vectors, result.usage.input_tokens if result.usage else 0
    return await model.aembed_documents(texts), 0


def _with_dimensions(model: Embeddings, name: str, dimensions: int | None) -> Embeddings:
    """The model itself, or a shallow copy (sharing its worker) with another output size."""
    if dimensions is None or getattr(model, "dimensions", None) == dimensions:
        return model
    if not isinstance(model, BaseModel) or "dimensions" not in type(model).model_fields:
        raise BadRequestError(
            f"The model '{name}' does not support the dimensions parameter",
            param="dimensions",
            code="unsupported_parameter",
        )
    return model.model_copy(update={"dimensions": dimensions})


def chat_usage_counter(stats: ModelStats) -> Callable[[Any], None]:
    """Counts the tokens in a reply's (or final chunk's) `usage_metadata`."""

    def observe(message: Any) -> None:
        usage = getattr(message, "usage_metadata", None)
        if usage:
            stats.count_tokens(usage.get("input_tokens", 0), usage.get("output_tokens", 0))

    return observe


def embedding_usage_counter(stats: ModelStats) -> Callable[[Any], None]:
    """Counts the prompt tokens of an `aembed` result."""

    def observe(result: tuple[list[list[float]], int]) -> None:
        stats.count_tokens(result[1], 0)

    return observe
