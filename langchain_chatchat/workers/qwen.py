"""Qwen (Alibaba DashScope) through the official `dashscope` SDK.

The SDK reports API failures as response objects with a non-200 `status_code` rather than
exceptions — including errors sent inside a stream — so every response passes through
`_raise_for_response`. Transport failures surface as `requests`/`aiohttp` exceptions and are
mapped in `_transport_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import aiohttp
import requests
from dashscope import AioGeneration, Generation, TextEmbedding
from dashscope.client.base_api import BaseAioApi

try:  # newer SDKs keep one aiohttp session per event loop, and never close it themselves
    from dashscope.api_entities.aio_session import close_shared_aio_session
except ImportError:  # older SDKs open a session per call: nothing stays open
    close_shared_aio_session = None  # type: ignore[assignment]  # checked before each use

from langchain_chatchat.workers import qwen_multimodal
from langchain_chatchat.workers.base import ChatWorker, EmbeddingWorker, MessageRules
from langchain_chatchat.workers.content import prepare_media
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ChatchatError,
    ContentFilterError,
    ErrorTable,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
    retry_after_seconds,
    transport_errors,
)
from langchain_chatchat.workers.limits import TextLimit, check_texts
from langchain_chatchat.workers.sampling import (
    ANY_TOOL_INSTRUCTION,
    add_system_instruction,
    clamp_sampling,
    is_forced,
    unforce_tools,
)
from langchain_chatchat.workers.streaming import CumulativeToIncremental, ToolCallHeaders
from langchain_chatchat.workers.transport import closing_at_loop_shutdown
from langchain_chatchat.workers.types import (
    ChatDelta,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
    ToolCallDelta,
    Usage,
    WorkerMessage,
    media_tokens,
)

# DashScope's documented endpoints (help.aliyun.com/zh/model-studio/regions; the `dashscope`
# SDK's common/env.py and set_region() build the same hosts). The native API is under /api/v1;
# the OpenAI-compatible mode under /compatible-mode/v1 (use ChatOpenAICompatible there).
DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"
INTERNATIONAL_BASE_URL = "https://dashscope-intl.aliyuncs.com/api/v1"  # Singapore
US_BASE_URL = "https://dashscope-us.aliyuncs.com/api/v1"  # Virginia (unverified host name)
COMPATIBLE_MODE_BASE_URL = "https://dashscope.aliyuncs.com/compatible-mode/v1"
INTERNATIONAL_COMPATIBLE_MODE_BASE_URL = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"


def workspace_base_url(workspace_id: str, region: str, *, compatible_mode: bool = False) -> str:
    """A Model Studio workspace's own endpoint (`{workspace}.{region}.maas.aliyuncs.com`), as the
    SDK's `dashscope.set_region(region, workspace_id)` builds it."""
    root = f"https://{workspace_id}.{region}.maas.aliyuncs.com"
    return f"{root}/compatible-mode/v1" if compatible_mode else f"{root}/api/v1"


PROVIDER = "qwen"
# qwen-api-reference, finish_reason: "stop", "length", "tool_calls" ("null" while generating).
_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter"})
# Open-source Qwen3 checkpoints and the QwQ/QVQ reasoning models only answer over a stream.
_STREAM_ONLY = re.compile(r"^(qwq|qvq)|^qwen3(\.\d+)?-(\d+(\.\d+)?b|\d+b-a\d+b)", re.IGNORECASE)
# Thinking-only models; and the open-source Qwen3 hybrids, which think unless told not to
# (help.aliyun.com/zh/model-studio/deep-thinking: enable_thinking defaults to true for the
# open-source Qwen3 models, false for the commercial ones).
_THINKING_ONLY = re.compile(r"^(qwq|qvq)|-thinking|^deepseek-r1", re.IGNORECASE)
_THINKING_BY_DEFAULT = re.compile(r"^qwen3(\.\d+)?-(\d+(\.\d+)?b|\d+b-a\d+b)$", re.IGNORECASE)
# Sampling ranges of the native API (help.aliyun.com/zh/model-studio/qwen-api-reference:
# temperature [0, 2), top_p (0, 1]); values outside are clamped to these.
_SAMPLING_RANGES = {"temperature": (0.0, 1.99), "top_p": (0.01, 1.0)}


_SDK_SESSION_GUARDS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, AsyncGenerator[None, None]
] = weakref.WeakKeyDictionary()
"""Per event loop, the guard that closes the SDK's shared aiohttp session at loop shutdown."""


class _DashScopeClient:
    """Credentials and endpoint shared by the chat and embedding workers."""

    provider = PROVIDER
    timeout: float | None  # set by the worker base class

    def _init_client(self, api_key: str | None, base_url: str | None) -> None:
        if not api_key:
            raise AuthenticationError(
                "no DashScope API key: pass api_key=... or set DASHSCOPE_API_KEY", provider=PROVIDER
            )
        self._api_key = api_key
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")

    async def aclose(self) -> None:
        """Close the SDK's aiohttp session of the running event loop (shared by every DashScope
        call on it), so a server's shutdown leaves no "Unclosed client session" behind."""
        guard = _SDK_SESSION_GUARDS.pop(asyncio.get_running_loop(), None)
        if guard is not None:
            await guard.aclose()  # runs close_shared_aio_session
        elif close_shared_aio_session is not None:
            await close_shared_aio_session()

    async def _close_sdk_session_with_loop(self) -> None:
        """Before an async SDK call: make sure the session the SDK keeps for this loop is
        closed when the loop shuts down (`asyncio.run`, pytest-asyncio, a server's loop) even if
        nobody calls `aclose`, so no session outlives its loop unclosed."""
        loop = asyncio.get_running_loop()
        if close_shared_aio_session is None or loop in _SDK_SESSION_GUARDS:
            return
        guard = closing_at_loop_shutdown(close_shared_aio_session)
        await anext(guard)
        _SDK_SESSION_GUARDS[loop] = guard

    def _sdk_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"api_key": self._api_key, "base_address": self.base_url}
        if self.timeout is not None:
            kwargs["request_timeout"] = self.timeout
        return kwargs


class QwenWorker(_DashScopeClient, ChatWorker):
    """Qwen over DashScope's native API: text models on text generation, vision models on the
    multimodal endpoint (chosen by model name, or by `multimodal`; see qwen_multimodal.py), with
    `file://` media read only from `local_media_dir`.

    - tool_choice is "auto", "none" or a named function (qwen-api-reference: tool_choice; the
      API answers "required" with 400 'tool_choice is one of the strings that should be
      ["none", "auto"]'): "any"/"required" forces the tool when exactly one is bound; with
      several (no documented form says "any of these") it is "auto" plus a system instruction
      to call one of them (`ANY_TOOL_INSTRUCTION`) — the model is asked, not forced;
    - thinking mode refuses a forced tool and JSON output (deep-thinking guide): on a hybrid
      model such a call runs with thinking off; a thinking-only model (QwQ, *-thinking) is
      offered only the forced tool with "auto", and JSON output is a typed error there.
    """

    message_rules = MessageRules(images=True)
    media_rules = qwen_multimodal.MEDIA_RULES

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        multimodal: bool | None = None,
        local_media_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_client(api_key, base_url)
        self.multimodal = multimodal
        self.local_media_dir = local_media_dir

    def prepare_media(self, request: ChatRequest) -> ChatRequest:
        return prepare_media(
            request,
            self.media_rules,
            self.provider,
            vision=self.multimodal,
            local_dir=self.local_media_dir,
        )

    def _generate(self, request: ChatRequest) -> tuple[Any, Any]:
        """The SDK calls (sync, async) of the endpoint that serves `request.model`."""
        if qwen_multimodal.uses_multimodal(request.model, self.multimodal):
            return qwen_multimodal.call, qwen_multimodal.acall
        return Generation.call, AioGeneration.call

    def prepare(self, request: ChatRequest) -> ChatRequest:
        request = super().prepare(request)
        return clamp_sampling(request, _SAMPLING_RANGES, PROVIDER)

    # -- request translation ---------------------------------------------------------------
    def _payload(self, request: ChatRequest) -> dict[str, Any]:
        extra = dict(request.extra)
        # Thinking output and stream-only models require the streaming API; a non-streaming
        # invocation then streams on the wire and the base class sums the deltas.
        stream = (
            request.stream
            or bool(extra.get("enable_thinking"))
            or bool(_STREAM_ONLY.match(request.model))
        )
        fixed: dict[str, Any] = {
            "model": request.model,
            "messages": _to_dashscope_messages(request.messages),
            "result_format": "message",
            "stream": stream,
            **self._sdk_kwargs(),
        }
        payload = dict(fixed)
        if stream:
            payload["incremental_output"] = extra.pop("incremental_output", True)
        for name in ("temperature", "top_p", "max_tokens", "seed", "response_format"):
            value = getattr(request, name)
            if value is not None:
                payload[name] = value
        if request.stop:
            payload["stop"] = request.stop
        if request.tools:
            payload["tools"] = request.tools
            if request.tool_choice is not None:
                payload["tool_choice"] = _tool_choice(request.tool_choice, request.tools)
                if request.tool_choice == "required" and payload["tool_choice"] == "auto":
                    add_system_instruction(payload["messages"], ANY_TOOL_INSTRUCTION)
        if request.user:
            extra.setdefault("user", request.user)
        payload.update(extra)  # enable_search, enable_thinking, thinking_budget, ...
        payload.update(fixed)  # extra never overrides the messages, key, URL or timeout
        _fit_json_schema(payload)
        _fit_thinking(payload)
        return payload

    # -- transport ----------------------------------------------------------------------------
    def _call(self, request: ChatRequest) -> Iterator[ChatDelta]:
        payload = self._payload(request)
        with _transport_errors():
            response: Any = self._generate(request)[0](**payload)  # a generator when streaming
            if not payload["stream"]:
                yield _delta_from_response(_checked(response), request.model, final=True)
                return
            reader = _StreamReader(request.model, cumulative=not payload["incremental_output"])
            try:
                for chunk in response:
                    yield from reader.read(_checked(chunk))
            finally:
                response.close()
            reader.finish()

    async def _acall(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        payload = self._payload(request)
        await self._close_sdk_session_with_loop()
        with _transport_errors():
            response: Any = await self._generate(request)[1](**payload)
            if not payload["stream"]:
                yield _delta_from_response(_checked(response), request.model, final=True)
                return
            reader = _StreamReader(request.model, cumulative=not payload["incremental_output"])
            try:
                async for chunk in response:
                    for delta in reader.read(_checked(chunk)):
                        yield delta
            finally:
                await response.aclose()
            reader.finish()


class _StreamReader:
    """Per-stream state: cumulative→incremental conversion and usage emitted exactly once.

    DashScope repeats the running usage in every chunk; passing it on each time would make
    LangChain's chunk addition over-count, so only the final delta carries it.
    """

    def __init__(self, model: str, cumulative: bool) -> None:
        self._model = model
        self._converter = CumulativeToIncremental() if cumulative else None
        self._headers = ToolCallHeaders()
        self._metadata: dict[str, Any] = {}
        self.finished = False

    def read(self, response: Any) -> Iterator[ChatDelta]:
        delta = _delta_from_response(response, self._model, final=False)
        if self._converter is not None:
            delta = self._converter.convert(delta)
        self._metadata.update(delta.metadata)  # search_info may come before the last chunk
        delta.metadata = self._metadata if delta.finish_reason else {}
        delta.tool_calls = self._headers.dedupe(delta.tool_calls)
        if delta.finish_reason is None:
            delta.usage = None
        else:
            self.finished = True
        if delta.text or delta.reasoning or delta.tool_calls or delta.finish_reason:
            yield delta

    def finish(self) -> None:
        if not self.finished:
            raise UpstreamConnectionError(
                "the DashScope stream ended before the reply was finished", provider=PROVIDER
            )


# -- response translation --------------------------------------------------------------------
def _delta_from_response(response: Any, model: str, *, final: bool) -> ChatDelta:
    output = response.output or {}
    choices = output.get("choices") or []
    if choices:
        choice = choices[0]
        message = choice.get("message") or {}
        text = message.get("content") or ""
        reasoning = message.get("reasoning_content") or ""
        raw_calls = message.get("tool_calls") or []
        finish_reason = choice.get("finish_reason")
    else:  # result_format="text" replies, kept for models that ignore result_format
        text, reasoning, raw_calls = output.get("text") or "", "", []
        finish_reason = output.get("finish_reason")
    if isinstance(text, list):  # multimodal-style content parts
        text = "".join(part.get("text", "") for part in text)
    metadata: dict[str, Any] = {}
    if output.get("search_info"):  # enable_search with search_options.enable_source
        metadata["search_info"] = output["search_info"]
    if finish_reason in (None, "null", ""):
        finish_reason = "stop" if final else None
    elif finish_reason not in _FINISH_REASONS:  # never pass an unknown ending off as complete
        metadata["provider_finish_reason"] = finish_reason
        finish_reason = "length"
    tool_calls = []
    for position, call in enumerate(raw_calls):
        function = call.get("function") or {}
        tool_calls.append(
            ToolCallDelta(
                index=call.get("index", position),
                id=call.get("id") or None,
                name=function.get("name") or None,
                arguments=function.get("arguments") or "",
            )
        )
    return ChatDelta(
        text=text,
        reasoning=reasoning,
        tool_calls=tool_calls,
        finish_reason=finish_reason,
        usage=_usage(response.usage),
        request_id=response.request_id or None,
        model=model,
        metadata=metadata,
    )


def _usage(raw: Any) -> Usage | None:
    if not raw:
        return None
    input_tokens = raw.get("input_tokens") or 0
    output_tokens = raw.get("output_tokens") or 0
    details = raw.get("output_tokens_details") or {}
    prompt_details = raw.get("prompt_tokens_details") or {}
    cached = prompt_details.get("cached_tokens")
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=raw.get("total_tokens") or input_tokens + output_tokens,
        reasoning_tokens=details.get("reasoning_tokens"),
        cached_tokens=raw.get("cached_tokens") if cached is None else cached,
        # multimodal endpoint: `input_tokens_details` and the same counts at the top level
        **media_tokens(raw.get("input_tokens_details"), raw),
    )


def _to_dashscope_messages(messages: list[WorkerMessage]) -> list[dict[str, Any]]:
    names_by_call_id: dict[str, str] = {}
    converted = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
            names_by_call_id.update((call.id, call.name) for call in message.tool_calls)
        if message.role == "tool":
            item["tool_call_id"] = message.tool_call_id
            if name := message.name or names_by_call_id.get(message.tool_call_id or ""):
                item["name"] = name
        converted.append(item)
    return converted


def _tool_choice(choice: str, tools: list[dict[str, Any]]) -> Any:
    """DashScope's tool_choice: "auto", "none", or a function object to force one ("required"
    over several tools becomes "auto"; the caller adds `ANY_TOOL_INSTRUCTION`)."""
    if choice in ("auto", "none"):
        return choice
    if choice == "required":
        if len(tools) != 1:
            return "auto"
        choice = tools[0]["function"]["name"]
    return {"type": "function", "function": {"name": choice}}


# json_schema output is documented for these models only (help.aliyun.com/zh/model-studio/
# json-mode; unverified for models the page does not list: the stricter reading).
_JSON_SCHEMA_MODELS = re.compile(r"^(qwen3-max|qwen-plus|qwen-flash)", re.IGNORECASE)


def _fit_json_schema(payload: dict[str, Any]) -> None:
    """Elsewhere, ask for a JSON object and give the schema in the system prompt."""
    response_format = payload.get("response_format") or {}
    if response_format.get("type") != "json_schema" or _JSON_SCHEMA_MODELS.match(payload["model"]):
        return
    schema = (response_format.get("json_schema") or {}).get("schema", {})
    instruction = (
        "Answer with a single JSON object that conforms to this JSON schema:\n"
        + json.dumps(schema, ensure_ascii=False)
    )
    add_system_instruction(payload["messages"], instruction)
    payload["response_format"] = {"type": "json_object"}


def _fit_thinking(payload: dict[str, Any]) -> None:
    """Make a call that forces a tool or asks for JSON acceptable to a thinking model."""
    model, enable = payload["model"], payload.get("enable_thinking")
    always = bool(_THINKING_ONLY.search(model))
    thinking = always or enable is True or (enable is None and _THINKING_BY_DEFAULT.match(model))
    kind = (payload.get("response_format") or {}).get("type")
    wants_json = kind in ("json_object", "json_schema")
    if not thinking or not (is_forced(payload.get("tool_choice")) or wants_json):
        return
    if not always:
        payload["enable_thinking"] = False
        return
    if wants_json:
        raise BadRequestError(
            f"{model} always thinks, and DashScope gives no JSON output in thinking mode; "
            "use with_structured_output(method='function_calling') or a non-thinking model",
            provider=PROVIDER,
            param="response_format",
        )
    unforce_tools(payload, PROVIDER)


# -- errors ------------------------------------------------------------------------------------
def _checked(response: Any) -> Any:
    if response.status_code != 200:
        raise _error_from_response(response)
    return response


QWEN_ERRORS = ErrorTable(
    # DashScope's error-code reference; dotted codes ("Throttling.RateQuota",
    # "AccessDenied.Unpurchased", "InternalError.Algo") also match their first part.
    # InternalError*, ModelServingError and ModelUnavailable are the service side failing:
    # retryable, even when they arrive inside a stream with a 4xx-looking status.
    {
        "InvalidApiKey": AuthenticationError,
        "AccessDenied": PermissionDeniedError,
        "Arrearage": PermissionDeniedError,
        "DataInspectionFailed": ContentFilterError,
        "data_inspection_failed": ContentFilterError,
        "Throttling": RateLimitError,
        "ModelNotFound": NotFoundError,
        "Model.NotFound": NotFoundError,
        "RequestTimeOut": UpstreamTimeoutError,
        "InternalError": UpstreamServerError,
        "ModelServingError": UpstreamServerError,
        "ModelUnavailable": UpstreamServerError,
    },
    messages=[(re.compile("model not exist", re.IGNORECASE), NotFoundError)],
)


def _error_from_response(response: Any) -> ChatchatError:
    status = int(response.status_code)
    error = QWEN_ERRORS.error(
        status,
        response.message or f"DashScope returned HTTP {status}",
        code=response.code or None,
        provider=PROVIDER,
        request_id=response.request_id or None,
        retry_after=retry_after_seconds(getattr(response, "headers", None) or {}),
    )
    if isinstance(error, UpstreamServerError) and error.status_code < 500:
        error.status_code = 503
    return error


@contextlib.contextmanager
def _transport_errors() -> Iterator[None]:
    """Map the SDK's transport exceptions (requests, aiohttp) to typed, retryable errors."""
    with transport_errors(
        PROVIDER,
        "DashScope",
        timeouts=(requests.Timeout, asyncio.TimeoutError, aiohttp.ServerTimeoutError),
        failures=(requests.RequestException, aiohttp.ClientError, ConnectionError),
        malformed=(json.JSONDecodeError,),
    ):
        yield


# -- embeddings ----------------------------------------------------------------------------------
_BATCH_LIMITS = {
    "text-embedding-v1": 25,
    "text-embedding-v2": 25,
    "text-embedding-v3": 10,
    "text-embedding-v4": 10,
}
# Tokens per text (help.aliyun.com/zh/model-studio/text-embedding-synchronous-api).
_TEXT_LIMITS = {
    "text-embedding-v1": TextLimit(tokens=2048),
    "text-embedding-v2": TextLimit(tokens=2048),
    "text-embedding-v3": TextLimit(tokens=8192),
    "text-embedding-v4": TextLimit(tokens=8192),
}


class QwenEmbeddingWorker(_DashScopeClient, EmbeddingWorker):
    default_batch_size = 10  # the strictest documented limit, for models not in the table

    def __init__(self, *, api_key: str | None, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_client(api_key, base_url)

    def batch_limit(self, model: str) -> int:
        return _BATCH_LIMITS.get(model, self.default_batch_size)

    def _batches(self, request: EmbeddingRequest, batch_size: int | None) -> list[EmbeddingRequest]:
        check_texts(request.texts, _TEXT_LIMITS.get(request.model), request.model, PROVIDER)
        return super()._batches(request, batch_size)

    def _parameters(self, request: EmbeddingRequest) -> dict[str, Any]:
        parameters: dict[str, Any] = {"text_type": request.text_type, **request.extra}
        if request.dimensions is not None:
            parameters["dimension"] = request.dimensions
        return parameters

    def _embed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        with _transport_errors():
            response = TextEmbedding.call(
                model=request.model,
                input=request.texts,
                **self._parameters(request),
                **self._sdk_kwargs(),
            )
        return _embedding_result(_checked(response), request)

    async def _aembed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        await self._close_sdk_session_with_loop()
        with _transport_errors():
            response = await BaseAioApi.call(
                model=request.model,
                input={"texts": request.texts},
                task_group="embeddings",
                task=TextEmbedding.task,  # type: ignore[attr-defined]  # a class attribute the SDK's annotations omit
                function="text-embedding",
                **self._parameters(request),
                **self._sdk_kwargs(),
            )
        return _embedding_result(_checked(response), request)


def _embedding_result(response: Any, request: EmbeddingRequest) -> EmbeddingResult:
    items = sorted(response.output["embeddings"], key=lambda item: item["text_index"])
    if len(items) != len(request.texts):
        raise UpstreamServerError(
            f"DashScope returned {len(items)} embeddings for {len(request.texts)} texts",
            provider=PROVIDER,
            request_id=response.request_id,
        )
    usage = response.usage or {}
    tokens = usage.get("total_tokens", 0)
    return EmbeddingResult(
        vectors=[item["embedding"] for item in items],
        usage=Usage(input_tokens=tokens, total_tokens=tokens),
        request_id=response.request_id,
        model=request.model,
    )
