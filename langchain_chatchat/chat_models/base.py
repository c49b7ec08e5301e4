"""The generic LangChain chat model over any `ChatWorker`.

Provider classes only declare fields and build their worker; sync/async/streaming, tool
binding, structured output, usage and metadata live here once. The model implements only
LangChain's documented hooks (`_generate`, `_agenerate`, `_stream`, `_astream`), so callbacks,
tracing, caching and rate limiting work as for any LangChain chat model. `build_request` is the
public seam to the worker: the server uses it to call the worker directly when nothing
observes a call (see server/direct.py).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from operator import itemgetter
from typing import Annotated, Any, ClassVar, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

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
    def build_request(
        self, messages: Sequence[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatRequest:
        """The worker request for `messages` with this model's settings and the call's options
        (what `invoke(messages, stop=..., **kwargs)` sends)."""
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
        refuse_unknown_options(kwargs, self.call_options, provider=self.provider)

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
        result = self._worker.invoke(self.build_request(messages, stop, **kwargs))
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
        result = await self._worker.ainvoke(self.build_request(messages, stop, **kwargs))
        return ChatResult(
            generations=[ChatGeneration(message=to_ai_message(result, self.provider))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for delta in self._worker.stream(self.build_request(messages, stop, **kwargs)):
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
        deltas = self._worker.astream(self.build_request(messages, stop, **kwargs))
        try:
            async for delta in deltas:
                chunk = ChatGenerationChunk(message=to_ai_chunk(delta, self.provider))
                if run_manager and delta.text:
                    await run_manager.on_llm_new_token(delta.text, chunk=chunk)
                yield chunk
        finally:
            await deltas.aclose()  # closes the upstream stream now, not when collected

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
                PydanticToolsParser(tools=[cast(type[BaseModel], schema)], first_tool_only=True)
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
            )
        elif method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"},
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser = _json_parser(schema, is_pydantic)
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
            parser = _json_parser(schema, is_pydantic)
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


def refuse_unknown_options(
    options: Iterable[str], allowed: AbstractSet[str], *, provider: str | None = None
) -> None:
    """A 400 naming the `options` not in `allowed`, worded as OpenAI words it."""
    unknown = sorted(set(options) - allowed)
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise BadRequestError(
            f"Unrecognized request argument{plural} supplied: {', '.join(unknown)}",
            provider=provider,
            param=unknown[0],
        )


def _json_parser(schema: Any, is_pydantic: bool) -> Runnable:
    """Parses a JSON reply into `schema` (a pydantic class) or a plain dict."""
    return PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()


def _type_errors_invalid(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except (TypeError, KeyError, AttributeError) as error:  # raised by validators of message types
        raise ValueError(f"invalid message: {error}") from None


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
