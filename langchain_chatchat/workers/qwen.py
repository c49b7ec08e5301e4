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
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import requests
from dashscope import AioGeneration, Generation, TextEmbedding
from dashscope.client.base_api import BaseAioApi

try:  # newer SDKs keep one aiohttp session per event loop, and never close it themselves
    from dashscope.api_entities.aio_session import close_shared_aio_session
except ImportError:  # older SDKs open a session per call: nothing stays open
    close_shared_aio_session = None

from langchain_chatchat.workers.base import ChatWorker, EmbeddingWorker
from langchain_chatchat.workers.errors import (
    AuthenticationError,
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
)
from langchain_chatchat.workers.streaming import CumulativeToIncremental, ToolCallHeaders
from langchain_chatchat.workers.types import (
    ChatDelta,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
    ToolCallDelta,
    Usage,
    WorkerMessage,
)

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"
PROVIDER = "qwen"
# Open-source Qwen3 checkpoints and the QwQ/QVQ reasoning models only answer over a stream.
_STREAM_ONLY = re.compile(r"^(qwq|qvq)|^qwen3(\.\d+)?-(\d+(\.\d+)?b|\d+b-a\d+b)", re.IGNORECASE)


class _DashScopeClient:
    """Credentials and endpoint shared by the chat and embedding workers."""

    provider = PROVIDER

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
        if close_shared_aio_session is not None:
            await close_shared_aio_session()

    def _sdk_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"api_key": self._api_key, "base_address": self.base_url}
        if self.timeout is not None:  # type: ignore[attr-defined]
            kwargs["request_timeout"] = self.timeout  # type: ignore[attr-defined]
        return kwargs


class QwenWorker(_DashScopeClient, ChatWorker):
    def __init__(self, *, api_key: str | None, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_client(api_key, base_url)

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
        if request.user:
            extra.setdefault("user", request.user)
        payload.update(extra)  # enable_search, enable_thinking, thinking_budget, ...
        payload.update(fixed)  # extra never overrides the messages, key, URL or timeout
        return payload

    # -- transport ----------------------------------------------------------------------------
    def _call(self, request: ChatRequest) -> Iterator[ChatDelta]:
        payload = self._payload(request)
        with _transport_errors():
            response = Generation.call(**payload)
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
        with _transport_errors():
            response = await AioGeneration.call(**payload)
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
        self.finished = False

    def read(self, response: Any) -> Iterator[ChatDelta]:
        delta = _delta_from_response(response, self._model, final=False)
        if self._converter is not None:
            delta = self._converter.convert(delta)
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
    if finish_reason in (None, "null", ""):
        finish_reason = "stop" if final else None
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
    )


def _usage(raw: Any) -> Usage | None:
    if not raw:
        return None
    input_tokens = raw.get("input_tokens") or 0
    output_tokens = raw.get("output_tokens") or 0
    details = raw.get("output_tokens_details") or {}
    prompt_details = raw.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=raw.get("total_tokens") or input_tokens + output_tokens,
        reasoning_tokens=details.get("reasoning_tokens"),
        cached_tokens=prompt_details.get("cached_tokens"),
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
    """DashScope's tool_choice: "auto", "none", "required", or a function object to force one."""
    if choice == "required" and len(tools) == 1:
        choice = tools[0]["function"]["name"]
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


# -- errors ------------------------------------------------------------------------------------
def _checked(response: Any) -> Any:
    if response.status_code != 200:
        raise _error_from_response(response)
    return response


QWEN_ERRORS = ErrorTable(
    # DashScope's error-code reference; dotted codes ("Throttling.RateQuota",
    # "AccessDenied.Unpurchased") also match their first part.
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
    },
    messages=[(re.compile("model not exist", re.IGNORECASE), NotFoundError)],
)


def _error_from_response(response: Any) -> ChatchatError:
    status = int(response.status_code)
    return QWEN_ERRORS.error(
        status,
        response.message or f"DashScope returned HTTP {status}",
        code=response.code or None,
        provider=PROVIDER,
        request_id=response.request_id or None,
        retry_after=retry_after_seconds(getattr(response, "headers", None) or {}),
    )


@contextlib.contextmanager
def _transport_errors() -> Iterator[None]:
    """Map the SDK's transport exceptions (requests, aiohttp) to typed, retryable errors."""
    try:
        yield
    except ChatchatError:
        raise
    except (requests.Timeout, asyncio.TimeoutError, aiohttp.ServerTimeoutError) as error:
        raise UpstreamTimeoutError(
            f"DashScope did not answer in time: {type(error).__name__}", provider=PROVIDER
        ) from error
    except (requests.RequestException, aiohttp.ClientError, ConnectionError) as error:
        raise UpstreamConnectionError(
            f"DashScope connection failed: {type(error).__name__}", provider=PROVIDER
        ) from error
    except json.JSONDecodeError as error:
        raise UpstreamServerError(
            "DashScope sent a malformed response", provider=PROVIDER
        ) from error


# -- embeddings ----------------------------------------------------------------------------------
_BATCH_LIMITS = {
    "text-embedding-v1": 25,
    "text-embedding-v2": 25,
    "text-embedding-v3": 10,
    "text-embedding-v4": 10,
}


class QwenEmbeddingWorker(_DashScopeClient, EmbeddingWorker):
    default_batch_size = 10  # the strictest documented limit, for models not in the table

    def __init__(self, *, api_key: str | None, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_client(api_key, base_url)

    def batch_limit(self, model: str) -> int:
        return _BATCH_LIMITS.get(model, self.default_batch_size)

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
        with _transport_errors():
            response = await BaseAioApi.call(
                model=request.model,
                input={"texts": request.texts},
                task_group="embeddings",
                task=TextEmbedding.task,
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
