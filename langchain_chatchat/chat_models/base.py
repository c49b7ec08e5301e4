"""The generic LangChain chat model over any `ChatWorker`.

Provider classes only declare fields and build their worker; sync/async/streaming, tool
binding, structured output, usage and metadata live here once.

`ainvoke`/`astream` skip LangChain's run bookkeeping (callback manager, run ids, tracing
payloads, merging every streamed chunk for `on_llm_end`) when no callback, tracer, cache or
rate limiter could observe the call — the server's case. Callers see the same messages either
way; anything that listens (callbacks, LangSmith, `astream_events`, debug) gets the full path.
"""

from __future__ import annotations

import uuid
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Annotated, Any, ClassVar, Literal

from langchain_core.caches import BaseCache
from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableMap, RunnablePassthrough
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

try:  # private helpers; without them every call takes LangChain's full path
    from langchain_core.language_models._utils import _normalize_messages
    from langchain_core.utils.utils import LC_ID_PREFIX
except ImportError:  # pragma: no cover - depends on the installed langchain-core
    _normalize_messages = None  # type: ignore[assignment]
    LC_ID_PREFIX = "lc_run-"
try:  # what `CallbackManager.configure` consults besides the handlers it is given
    from langchain_core.globals import get_debug
    from langchain_core.tracers.context import _configure_hooks, _tracing_v2_is_enabled
    from langchain_core.utils.env import env_var_is_set
except ImportError:  # pragma: no cover - depends on the installed langchain-core
    _configure_hooks = None  # type: ignore[assignment]

from langchain_chatchat.chat_models.messages import to_ai_chunk, to_ai_message, to_worker_messages
from langchain_chatchat.workers.base import ChatWorker
from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.redact import register_model_secrets
from langchain_chatchat.workers.types import ChatRequest

# Call-time keyword arguments that map onto ChatRequest fields; anything else goes to `extra`.
_REQUEST_FIELDS = (
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
    "user",
)
# Tracing-only keyword arguments LangChain's own path removes before calling the provider.
_TRACING_KWARGS = ("ls_structured_output_format", "structured_output_format")


class ChatchatChatModel(BaseChatModel):
    """Base of every langchain-chatchat chat model."""

    model: str = Field(alias="model_name")
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = Field(default=None, alias="max_completion_tokens")
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    seed: int | None = None
    timeout: float | None = Field(default=60.0, alias="request_timeout")
    """Seconds to wait for the provider to connect or send the next chunk; never cuts a live stream."""
    max_retries: int = 2
    """Retries of retryable errors (rate limits, 5xx, timeouts) before anything was streamed."""
    streaming: bool = False
    """Make `invoke` use the streaming API under the hood (`.stream()` always streams)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Provider parameters not declared as fields, sent as they are."""

    provider: ClassVar[str] = "chatchat"
    call_options: ClassVar[frozenset[str]] = frozenset(
        {
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "stop",
            "seed",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
            "user",
            "presence_penalty",
            "frequency_penalty",
            "stream",  # LangChain's own switch between `_generate` and `_stream`
            "model",  # LangChain's per-call override; on HTTP the body's `model` picks the name
        }
    )
    """What a call (`invoke(**kwargs)`, an HTTP body) may set: OpenAI's per-call options here,
    each provider class adding the extras its API documents. Anything else is a
    `BadRequestError`; operator settings (keys, URLs, headers, timeouts, retries) are fields
    and `model_kwargs`, never call options."""
    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    _worker: ChatWorker = PrivateAttr()

    @abstractmethod
    def _build_worker(self) -> ChatWorker:
        """Create this provider's worker from the model's fields (credentials included)."""

    def _extra_params(self) -> dict[str, Any]:
        """Provider-specific fields to send with every request (e.g. Qwen's enable_search)."""
        return {}

    @model_validator(mode="after")
    def _init_worker(self) -> ChatchatChatModel:
        register_model_secrets(self)  # masked in every error and log line from now on
        self._worker = self._build_worker()
        return self

    @property
    def worker(self) -> ChatWorker:
        return self._worker

    # -- LangChain conventions -------------------------------------------------------------
    @property
    def InputType(self) -> Any:
        """LangChain's input type, validated so that malformed messages are a validation error.

        Some message shapes (e.g. an `invalid_tool_calls` entry with an unexpected key) make
        langchain-core's own validators raise `TypeError`, which a server validating its input
        with this type (LangServe) would answer with a 500 instead of a 400.
        """
        return Annotated[super().InputType, WrapValidator(_type_errors_invalid)]

    @property
    def _llm_type(self) -> str:
        return f"chatchat-{self.provider}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model, **self._default_params()}

    def _default_params(self) -> dict[str, Any]:
        params = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            **self._extra_params(),
            **self.model_kwargs,
        }
        return {key: value for key, value in params.items() if value is not None}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=self.provider,
            ls_model_name=kwargs.get("model", self.model),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        if max_tokens := kwargs.get("max_tokens", self.max_tokens):
            params["ls_max_tokens"] = max_tokens
        if ls_stop := stop or kwargs.get("stop") or self.stop:
            params["ls_stop"] = ls_stop
        return params

    # -- request building ------------------------------------------------------------------
    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatRequest:
        self._check_call_options(kwargs)
        params = {**self._default_params(), **kwargs}
        params.pop("stream", None)
        model = params.pop("model", None) or self.model
        fields = {name: params.pop(name) for name in _REQUEST_FIELDS if name in params}
        if "max_completion_tokens" in params:
            fields["max_tokens"] = params.pop("max_completion_tokens")
        stop = stop or params.pop("stop", None) or self.stop
        return ChatRequest(
            model=model,
            messages=to_worker_messages(messages),
            stop=[stop] if isinstance(stop, str) else stop,
            extra=params,
            **fields,
        )

    def _check_call_options(self, kwargs: dict[str, Any]) -> None:
        """Drop LangChain's tracing-only arguments; refuse any argument not in `call_options`."""
        for name in _TRACING_KWARGS:
            kwargs.pop(name, None)
        unknown = sorted(name for name in kwargs if name not in self.call_options)
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            raise BadRequestError(
                f"Unrecognized request argument{plural} supplied: {', '.join(unknown)}",
                provider=self.provider,
                param=unknown[0],
            )

    # -- the unobserved fast path ----------------------------------------------------------
    def _unobserved(self, config: RunnableConfig, kwargs: dict[str, Any], *, cached: bool) -> bool:
        """True when nothing could observe this call: no callback handler (given, inherited,
        the model's own, verbose/debug, LangSmith tracing, configure hooks), no rate limiter,
        no v1 output conversion, no `stream=` override and, for `ainvoke`, no LLM cache."""
        if (
            _normalize_messages is None
            or self.rate_limiter is not None
            or self.output_version == "v1"
            or "stream" in kwargs
        ):
            return False
        if cached and (
            isinstance(self.cache, BaseCache)
            or self.cache is True
            or (self.cache is None and get_llm_cache() is not None)
        ):
            return False
        if self.verbose or _has_handlers(config.get("callbacks")) or _has_handlers(self.callbacks):
            return False
        if _configure_hooks is None:  # pragma: no cover
            manager = AsyncCallbackManager.configure(
                config.get("callbacks"), self.callbacks, self.verbose
            )
            return not manager.handlers
        # The rest of `configure`'s sources of handlers, checked without building a manager
        # (a fifth of the cost); tests/robustness/test_fast_path.py holds the two in step.
        if get_debug() or _tracing_v2_is_enabled():
            return False
        if env_var_is_set("LANGCHAIN_TRACING") or env_var_is_set("LANGCHAIN_HANDLER"):
            return False  # LangChain's path raises its "v1 tracing is gone" error
        return not any(
            var.get() is not None or (env is not None and cls is not None and env_var_is_set(env))
            for var, _, cls, env in _configure_hooks
        )

    def _fast_messages(
        self, input: LanguageModelInput, kwargs: dict[str, Any]
    ) -> list[BaseMessage]:
        for name in _TRACING_KWARGS:
            kwargs.pop(name, None)
        if isinstance(input, list) and all(isinstance(message, BaseMessage) for message in input):
            messages = input  # what `_convert_input(...).to_messages()` would rebuild
        else:
            messages = self._convert_input(input).to_messages()
        return _normalize_messages(messages)

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        config = ensure_config(config)
        if not self._unobserved(config, kwargs, cached=True):
            return await super().ainvoke(input, config, stop=stop, **kwargs)
        messages = self._fast_messages(input, kwargs)
        if self.streaming or type(self)._agenerate is not ChatchatChatModel._agenerate:
            message = (await self._agenerate(messages, stop=stop, **kwargs)).generations[0].message
        else:  # `_agenerate` without the ChatResult it would wrap the message in
            message = await self._ainvoke_message(messages, stop, kwargs)
        if message.id is None:  # what LangChain's run manager would have named it
            message.id = f"{LC_ID_PREFIX}-{uuid.uuid4()}-0"
        return message  # type: ignore[return-value]

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        config = ensure_config(config)
        if self.disable_streaming or not self._unobserved(config, kwargs, cached=False):
            async for chunk in super().astream(input, config, stop=stop, **kwargs):
                yield chunk
            return
        messages = self._fast_messages(input, kwargs)
        run_id = f"{LC_ID_PREFIX}-{uuid.uuid4()}"
        if type(self)._astream is ChatchatChatModel._astream:
            chunks = self._achunks(messages, stop, kwargs)
        else:  # a subclass's own `_astream`
            chunks = _messages_of(self._astream(messages, stop=stop, **kwargs))
        last: AIMessageChunk | None = None
        try:
            async for chunk in chunks:
                if chunk.id is None:
                    chunk.id = run_id
                last = chunk
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]  # closes the upstream stream now
        if last is None:
            raise ValueError("No generation chunks were returned")
        if not last.chunk_position:
            empty: Any = "" if isinstance(last.content, str) else []
            yield AIMessageChunk(content=empty, chunk_position="last", id=run_id)

    async def _achunks(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AsyncIterator[AIMessageChunk]:
        provider = self.provider
        deltas = self._worker.astream(self._request(messages, stop, kwargs))
        try:
            async for delta in deltas:
                yield to_ai_chunk(delta, provider)
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]

    # -- generation ------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        result = self._worker.invoke(self._request(messages, stop, kwargs))
        return ChatResult(
            generations=[ChatGeneration(message=to_ai_message(result, self.provider))]
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        message = await self._ainvoke_message(messages, stop, kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _ainvoke_message(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        result = await self._worker.ainvoke(self._request(messages, stop, kwargs))
        return to_ai_message(result, self.provider)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for delta in self._worker.stream(self._request(messages, stop, kwargs)):
            chunk = ChatGenerationChunk(message=to_ai_chunk(delta, self.provider))
            if run_manager and delta.text:
                run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for message in self._achunks(messages, stop, kwargs):
            chunk = ChatGenerationChunk(message=message)
            if run_manager and (text := message.content) and isinstance(text, str):
                await run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk

    # -- tools and structured output -------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: dict | str | bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools in OpenAI format; `tool_choice` accepts "auto", "none", "any"/"required"/True,
        a tool name, or OpenAI's {"type": "function", "function": {"name": ...}}."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = _normalize_tool_choice(
                tool_choice, [t["function"]["name"] for t in formatted]
            )
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_mode", "json_schema"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict | Any]:
        """Structured output by forced tool call, JSON mode, or JSON schema response format."""
        if kwargs:
            raise ValueError(f"unexpected arguments: {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        if method == "function_calling":
            if schema is None:
                raise ValueError("method='function_calling' needs a schema")
            tool_name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools(
                [schema],
                tool_choice=tool_name,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser: Runnable = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
            )
        elif method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"},
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
            )
        elif method == "json_schema":
            if schema is None:
                raise ValueError("method='json_schema' needs a schema")
            json_schema = convert_to_json_schema(schema)
            response_format = {
                "type": "json_schema",
                "json_schema": {
                    "name": json_schema.get("title", "output"),
                    "description": json_schema.get("description", ""),
                    "schema": json_schema,
                    **({"strict": strict} if strict is not None else {}),
                },
            }
            llm = self.bind(
                response_format=response_format,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": json_schema},
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
            )
        else:
            raise ValueError(
                f"unknown method {method!r}; use function_calling, json_mode or json_schema"
            )
        if not include_raw:
            return llm | parser
        parse = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parse.with_fallbacks(
            [fallback], exception_key="parsing_error"
        )


def _type_errors_invalid(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except (TypeError, KeyError, AttributeError) as error:  # raised by validators of message types
        raise ValueError(f"invalid message: {error}") from None


def _has_handlers(callbacks: Any) -> bool:
    """Whether `callbacks` (a list of handlers or a callback manager) holds any handler."""
    if not callbacks:
        return False
    return bool(callbacks.handlers) if hasattr(callbacks, "handlers") else True


async def _messages_of(chunks: AsyncIterator[ChatGenerationChunk]) -> AsyncIterator[AIMessageChunk]:
    try:
        async for chunk in chunks:
            yield chunk.message  # type: ignore[misc]
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _normalize_tool_choice(tool_choice: dict | str | bool, names: list[str]) -> str:
    if tool_choice is True or tool_choice in ("any", "required"):
        return "required"
    if isinstance(tool_choice, dict):
        tool_choice = tool_choice.get("function", {}).get("name") or tool_choice.get("name", "")
    if tool_choice in ("auto", "none") or tool_choice in names:
        return tool_choice
    raise ValueError(
        f"tool_choice {tool_choice!r} is neither auto/none/any/required nor a bound tool ({names})"
    )
