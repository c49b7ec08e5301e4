"""One worker for every OpenAI-style chat/embeddings API, specialised by small class attributes.

Most providers Chatchat 0.2 reached through hand-written `ApiModelWorker`s (Zhipu, Qianfan,
Ark, DeepSeek, Moonshot, MiniMax, Baichuan, Spark, Azure) now offer an OpenAI-shaped
`/chat/completions`; so do vLLM, Ollama, Xinference, LocalAI and One-API. They differ in a
handful of places, each of which is a class attribute or a small hook here:

- where: `default_base_url`, `chat_path`, `embeddings_path`, `query_params()`;
- who: `auth_headers()` (Bearer by default; Azure's api-key, Zhipu's JWT override it);
- what they accept: `message_rules`, `tool_choices`, `response_formats`, `max_stop`,
  `include_usage_option`, `echo_reasoning`, and `adjust_payload()` for the rest;
- what they send back: `check_body()` for errors carried in a 200 body, `delta_from_choice()`
  for streams that are not plain deltas, `error_codes` for the provider's own codes.

Transport: httpx for sync calls and aiohttp for async ones (one pooled client per worker, one
session per event loop, reused across calls), SSE parsed by httpx-sse / a small line reader.
aiohttp on the async path because it is the server's hot path: httpx's connection pool costs
~1 ms of CPU per request at 16 concurrent streams (it polls every idle connection on each
request), aiohttp's ~0.1 ms (see benchmarks/gateway.py).

Streams yield incremental deltas; usage and the finish reason are held back and emitted
exactly once, on the final delta, whether the provider sends usage in a
trailing `choices: []` chunk (OpenAI's `include_usage`), on the finishing chunk, inside the
choice (Moonshot), or not at all (several local servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, ClassVar, Literal

import aiohttp
import httpx
import orjson
from httpx_sse import EventSource

from langchain_chatchat.workers.base import ChatWorker, EmbeddingWorker, MessageRules, WorkerBase
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ChatchatError,
    ContentFilterError,
    ContextLengthError,
    PermissionDeniedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    error_for_status,
)
from langchain_chatchat.workers.limits import TextLimit, check_texts
from langchain_chatchat.workers.sampling import (
    SamplingRanges,
    clamp_sampling,
    is_forced,
    unforce_tools,
)
from langchain_chatchat.workers.streaming import ToolCallHeaders
from langchain_chatchat.workers.types import (
    ChatDelta,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
    FinishReason,
    ToolCallDelta,
    Usage,
    WorkerMessage,
)

logger = logging.getLogger(__name__)

ToolChoiceMode = Literal["auto", "none", "required", "named"]

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "tool_call": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "sensitive": "content_filter",
    # GLM: the prompt plus the reply reached the context window (docs.bigmodel.cn, 对话补全
    # finish_reason) — a cut-off reply, like "length".
    "model_context_window_exceeded": "length",
}
# DeepSeek (api-docs.deepseek.com, chat completion finish_reason): the reply was interrupted by
# the inference system; the text so far is incomplete, so the call fails (retryable).
_INTERRUPTED = frozenset({"insufficient_system_resource", "aborted", "network_error"})
_STANDARD_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "null"})
_CONTEXT_LENGTH = re.compile(
    r"context[ _]length|maximum context|context window|token limit|tokens? too long|too many tokens|"
    r"prompt is too long|input (?:token )?length|exceed.{0,40}(?:token|length)|超长|超过.{0,10}(?:上限|长度)",
    re.IGNORECASE,
)
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id", "x-tt-logid", "trace-id")


class OpenAICompatibleClient(WorkerBase):
    """Endpoint, credentials, HTTP clients and error mapping shared by chat and embedding workers."""

    provider: ClassVar[str] = "openai_compatible"
    default_base_url: ClassVar[str | None] = None
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    """The environment variables the provider's own SDK reads. Workers never read them; the
    LangChain classes do, and error messages name them."""
    api_key_required: ClassVar[bool] = False
    """Hosted providers need a key; local servers (vLLM, Ollama, ...) usually do not."""
    error_codes: ClassVar[Mapping[str, type[ChatchatError]]] = {}
    """The provider's own error codes (or error types) → typed errors; unknown codes fall back to
    the HTTP status."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(timeout=timeout, max_retries=max_retries)
        base_url = base_url or self.default_base_url
        if not base_url:
            raise BadRequestError(
                f"{self.provider}: base_url is required", provider=self.provider, param="base_url"
            )
        if self.api_key_required and not api_key:
            hint = f" or set {self.api_key_env}" if self.api_key_env else ""
            raise AuthenticationError(
                f"no {self.provider} API key: pass api_key=...{hint}", provider=self.provider
            )
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self._default_headers = dict(default_headers or {})
        self._default_query = dict(default_query or {})
        self.connect_timeout: float | None = None
        """Seconds to open a connection when it should differ from `timeout` (a server's
        `timeout.connect`); set before the first request, when the clients are built."""
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, aiohttp.ClientSession
        ] = weakref.WeakKeyDictionary()

    # -- request plumbing --------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        """Credentials for one request; Bearer unless the provider says otherwise."""
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def query_params(self) -> dict[str, str]:
        return dict(self._default_query)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _headers(self) -> dict[str, str]:
        return {**self._default_headers, **self.auth_headers()}

    def _http_timeout(self) -> httpx.Timeout:
        connect = self.timeout if self.connect_timeout is None else self.connect_timeout
        return httpx.Timeout(self.timeout, connect=connect)

    def http_client(self) -> httpx.Client:
        """One pooled client per worker, shared by threads (batch runs calls in a thread pool)."""
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._http_timeout())
            return self._client

    def async_http_client(self) -> aiohttp.ClientSession:
        """One aiohttp session per event loop: pooled connections must not cross loops."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None or client.closed:
            client = self._async_clients[loop] = aiohttp.ClientSession(
                connector=_Connector(limit=100),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._aiohttp_timeout(),
            )
        return client

    def _aiohttp_timeout(self) -> aiohttp.ClientTimeout:
        """`timeout` bounds the connect and every wait for data, never the whole reply."""
        connect = self.timeout if self.connect_timeout is None else self.connect_timeout
        return aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect, sock_read=self.timeout
        )

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    async def aclose(self) -> None:
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def _request_kwargs(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"json": payload, "headers": self._headers(), "params": self.query_params()}

    def _post(self, path: str, payload: dict[str, Any]) -> tuple[Any, httpx.Headers]:
        with self._transport_errors():
            response = self.http_client().post(self.url(path), **self._request_kwargs(payload))
        return self._json_or_raise(response), response.headers

    def _aiohttp_kwargs(self, payload: dict[str, Any]) -> dict[str, Any]:
        headers = self._headers()
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        return {
            "data": _encode(payload),
            "headers": headers,
            "params": self.query_params() or None,
            "timeout": self._aiohttp_timeout(),
        }

    async def _apost(self, path: str, payload: dict[str, Any]) -> tuple[Any, Mapping[str, str]]:
        with self._transport_errors():
            async with self.async_http_client().post(
                self.url(path), **self._aiohttp_kwargs(payload)
            ) as response:
                content = await response.read()
        return self._checked_body(response.status, content, response.headers), response.headers

    def _json_or_raise(self, response: httpx.Response) -> Any:
        return self._checked_body(response.status_code, response.content, response.headers)

    def _checked_body(self, status: int, content: bytes, headers: Mapping[str, str]) -> Any:
        body = _decode(content)
        if status >= 400:
            raise self.error_from_response(status, body, headers)
        if not isinstance(body, (dict, list)):
            raise UpstreamUnavailableError(
                f"{self.provider} sent a malformed response body",
                provider=self.provider,
                status_code=502,
            )
        self.check_body(body, headers)
        return body

    @contextlib.contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except (
            httpx.TimeoutException,
            TimeoutError,
        ) as error:  # aiohttp's timeouts are TimeoutErrors
            raise UpstreamTimeoutError(
                f"{self.provider} did not answer in time ({type(error).__name__})",
                provider=self.provider,
            ) from error
        except (httpx.TransportError, aiohttp.ClientError) as error:
            raise UpstreamUnavailableError(
                f"{self.provider} connection failed ({type(error).__name__})",
                provider=self.provider,
            ) from error

    # -- errors -----------------------------------------------------------------------------
    def check_body(self, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Raise for an error carried in a successful response or stream chunk."""
        if isinstance(body, dict) and body.get("error"):
            raise self.error_from_response(_status_of(body["error"]), body, headers or {})

    def request_id_of(self, body: Any, headers: Mapping[str, str] | None = None) -> str | None:
        if isinstance(body, dict):
            for key in ("request_id", "id"):
                if isinstance(body.get(key), str) and body[key]:
                    return body[key]
        for name in _REQUEST_ID_HEADERS:
            if headers and headers.get(name):
                return headers[name]
        return None

    def error_from_response(
        self, status: int, body: Any, headers: Mapping[str, str]
    ) -> ChatchatError:
        code, kind, message = _error_fields(body)
        message = message or f"{self.provider} returned HTTP {status}"
        kwargs: dict[str, Any] = {
            "provider": self.provider,
            "code": code or kind,
            "request_id": self.request_id_of(body, headers),
            "retry_after": _retry_after(headers),
        }
        error_class = self.classify_error(status, code, kind, message)
        if error_class is ChatchatError:
            return error_for_status(status, message, **kwargs)
        return error_class(message, **kwargs)

    def classify_error(
        self, status: int, code: str | None, kind: str | None, message: str
    ) -> type[ChatchatError]:
        """The typed error for a provider error: its code table first, then the message, then the
        HTTP status (`ChatchatError` means "decide by status")."""
        keys = (
            code,
            code.split(".")[0] if code else None,
            kind,
        )  # "RateLimitExceeded.EndpointRPMExceeded"
        mapped = next(
            (self.error_codes[key] for key in keys if key and key in self.error_codes), None
        )
        if mapped is not None and mapped is not BadRequestError:
            return mapped
        if "content_filter" in (code, kind):
            return ContentFilterError
        if "context_length_exceeded" in (code, kind) or (
            status in (400, 413, 422) and _CONTEXT_LENGTH.search(message)
        ):
            return ContextLengthError
        if mapped is not None:
            return mapped
        if status == 402:  # payment required: the account, not the request, must change
            return PermissionDeniedError
        return ChatchatError


class OpenAICompatibleWorker(OpenAICompatibleClient, ChatWorker):
    """Chat over `POST {base_url}/chat/completions` with OpenAI's request and SSE shapes."""

    message_rules: ClassVar[MessageRules] = MessageRules(images=True)
    chat_path: ClassVar[str] = "/chat/completions"
    include_usage_option: ClassVar[bool] = True
    """Send `stream_options: {"include_usage": true}` (providers that reject it set False)."""
    tool_choices: ClassVar[frozenset[str]] = frozenset({"auto", "none", "required", "named"})
    """The tool_choice forms the provider accepts; others are translated (see `convert_tool_choice`)."""
    response_formats: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})
    max_stop: ClassVar[int | None] = None
    """How many stop sequences the provider accepts (None: no documented limit)."""
    echo_reasoning: ClassVar[Literal["never", "tool_calls", "always"]] = "never"
    """Whether earlier reasoning_content goes back to the provider in assistant turns."""
    reasoning_models: ClassVar[re.Pattern[str] | None] = re.compile(r"o\d+(?:-|$)|gpt-5(?!-chat)")
    """Models that take `max_completion_tokens` and only the default temperature/top_p: OpenAI's
    o-series and gpt-5 reasoning models, on OpenAI and Azure (platform.openai.com/docs/api-reference
    /chat/create: max_tokens "is not compatible with o-series models"; learn.microsoft.com/azure/
    ai-foundry/openai/how-to/reasoning: "max_tokens ... use max_completion_tokens", temperature
    and top_p not supported)."""

    # -- provider rules (overridden per provider) ---------------------------------------------
    def sampling_ranges(self, model: str) -> SamplingRanges:
        """The temperature / top_p ranges `model` accepts; values outside are clamped."""
        return {}

    def max_tokens_field(self, model: str) -> str:
        """The name the provider documents for the output-token limit of `model`."""
        if self.reasoning_models is not None and self.reasoning_models.match(model):
            return "max_completion_tokens"
        return "max_tokens"

    metadata_keys: ClassVar[tuple[str, ...]] = ()
    """Top-level reply fields passed on in `response_metadata` (e.g. Zhipu's `web_search`)."""

    def response_extras(self, body: Mapping[str, Any], raw_finish: Any = None) -> dict[str, Any]:
        """What of a reply (or chunk) goes to `response_metadata` besides the standard fields:
        `metadata_keys`, and the provider's own finish reason when it is not a standard one."""
        extras = {key: body[key] for key in self.metadata_keys if body.get(key)}
        if isinstance(raw_finish, str) and raw_finish not in _STANDARD_FINISH:
            extras["provider_finish_reason"] = raw_finish
        return extras

    def thinking_mode(self, request: ChatRequest) -> Literal["off", "switchable", "always"]:
        """Whether `request` runs with thinking on ("switchable": on, but it can be turned off
        for one call; "always": a thinking-only model). Thinking models refuse forced tools."""
        return "off"

    def disable_thinking(self, payload: dict[str, Any]) -> None:
        """Turn thinking off in `payload` (for a call that forces a tool)."""

    # -- request translation -----------------------------------------------------------------
    def prepare(self, request: ChatRequest) -> ChatRequest:
        request = super().prepare(request)
        request = clamp_sampling(request, self.sampling_ranges(request.model), self.provider)
        if self.reasoning_models is not None and self.reasoning_models.match(request.model):
            for name in ("temperature", "top_p"):
                if getattr(request, name) not in (None, 1):
                    # OpenAI: "Unsupported value: 'temperature' does not support 0.2 with this
                    # model. Only the default (1) value is supported."
                    raise BadRequestError(
                        f"{request.model} is a reasoning model: {name} must be left unset (or 1)",
                        provider=self.provider,
                        param=name,
                    )
        if request.stop and self.max_stop is not None and len(request.stop) > self.max_stop:
            raise BadRequestError(
                f"{self.provider} accepts at most {self.max_stop} stop sequence(s), got {len(request.stop)}",
                provider=self.provider,
                param="stop",
            )
        kind = (request.response_format or {}).get("type")
        if kind and kind != "text" and kind not in self.response_formats:
            supported = ", ".join(sorted(self.response_formats)) or "none"
            raise BadRequestError(
                f"{self.provider} does not support response_format {kind!r} (supported: {supported}); "
                "use with_structured_output(method='function_calling') instead",
                provider=self.provider,
                param="response_format",
            )
        return request

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": request.model,
            "messages": [self.convert_message(m) for m in request.messages],
            "stream": request.stream,
        }
        if request.stream and self.include_usage_option:
            payload["stream_options"] = {"include_usage": True}
        for name in ("temperature", "top_p", "seed", "response_format", "user"):
            value = getattr(request, name)
            if value is not None:
                payload[name] = value
        if request.max_tokens is not None:
            payload[self.max_tokens_field(request.model)] = request.max_tokens
        if request.stop:
            payload["stop"] = request.stop
        if request.tools:
            payload.update(
                self.convert_tool_choice(
                    request.tools, request.tool_choice, self.tool_choice_forms(request.model)
                )
            )
        payload.update(request.extra)
        if is_forced(payload.get("tool_choice")):
            mode = self.thinking_mode(request)
            if mode == "switchable":
                logger.debug("%s: thinking off for a call that forces a tool", self.provider)
                self.disable_thinking(payload)
            elif mode == "always":
                unforce_tools(payload, self.provider)
        return self.adjust_payload(payload, request)

    def adjust_payload(self, payload: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
        """Last provider-specific touch to the payload."""
        return payload

    def convert_message(self, message: WorkerMessage) -> dict[str, Any]:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.name and message.role in ("user", "assistant", "system"):
            item["name"] = message.name
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
            if not message.text():
                item["content"] = None
        if message.role == "tool":
            item["tool_call_id"] = message.tool_call_id
        if message.reasoning_content and (
            self.echo_reasoning == "always"
            or (self.echo_reasoning == "tool_calls" and message.tool_calls)
        ):
            item["reasoning_content"] = message.reasoning_content
        return item

    def tool_choice_forms(self, model: str) -> frozenset[str]:
        """The tool_choice forms `model` accepts (`tool_choices` unless a provider narrows it)."""
        return self.tool_choices

    def convert_tool_choice(
        self,
        tools: list[dict[str, Any]],
        choice: str | None,
        allowed: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """`tools` and `tool_choice` in the forms this provider accepts.

        A forced tool is sent as OpenAI's named choice where supported; otherwise only that tool
        is offered, with "required" or "auto" — the closest the provider allows. "required"
        falls back to "auto", and "none" without support withdraws the tools altogether.
        """
        allowed = self.tool_choices if allowed is None else allowed
        if choice is None:
            return {"tools": tools}
        if choice == "none" and "none" not in allowed:
            return {}
        if choice in ("auto", "none", "required"):
            if choice == "required" and "required" not in allowed:
                choice = "auto"
            return (
                {"tools": tools, "tool_choice": choice} if choice in allowed else {"tools": tools}
            )
        named = [tool for tool in tools if tool.get("function", {}).get("name") == choice]
        if not named:
            raise BadRequestError(
                f"tool_choice {choice!r} names no bound tool",
                provider=self.provider,
                param="tool_choice",
            )
        if "named" in allowed:
            return {
                "tools": tools,
                "tool_choice": {"type": "function", "function": {"name": choice}},
            }
        logger.debug("%s cannot force a named tool; offering only %r", self.provider, choice)
        fallback = "required" if "required" in allowed else "auto"
        return (
            {"tools": named, "tool_choice": fallback} if fallback in allowed else {"tools": named}
        )

    # -- transport ----------------------------------------------------------------------------
    def _call(self, request: ChatRequest) -> Iterator[ChatDelta]:
        payload = self.build_payload(request)
        if not request.stream:
            body, headers = self._post(self.chat_path, payload)
            yield self.parse_completion(body, headers, request)
            return
        with (
            self._transport_errors(),
            self.http_client().stream(
                "POST", self.url(self.chat_path), **self._request_kwargs(payload)
            ) as response,
        ):
            if not _is_event_stream(response):
                response.read()
                yield self.parse_completion(
                    self._json_or_raise(response), response.headers, request
                )
                return
            reader = StreamReader(self, request, response.headers)
            for event in EventSource(response).iter_sse():
                yield from reader.feed(event.data)
            yield from reader.finish()

    async def _acall(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        payload = self.build_payload(request)
        if not request.stream:
            body, headers = await self._apost(self.chat_path, payload)
            yield self.parse_completion(body, headers, request)
            return
        with self._transport_errors():
            async with self.async_http_client().post(
                self.url(self.chat_path), **self._aiohttp_kwargs(payload)
            ) as response:
                if response.status >= 400 or "text/event-stream" not in response.headers.get(
                    "content-type", ""
                ):
                    body = self._checked_body(
                        response.status, await response.read(), response.headers
                    )
                    yield self.parse_completion(body, response.headers, request)
                    return
                reader = StreamReader(self, request, response.headers)
                async for data in _sse_data(response.content):
                    for delta in reader.feed(data):
                        yield delta
                for delta in reader.finish():
                    yield delta

    # -- response translation --------------------------------------------------------------------
    def parse_completion(
        self, body: dict[str, Any], headers: Mapping[str, str], request: ChatRequest
    ) -> ChatDelta:
        """A whole (non-streamed) reply as one final delta."""
        choices = body.get("choices") or []
        if not choices:
            raise UpstreamUnavailableError(
                f"{self.provider} sent a reply without choices",
                provider=self.provider,
                request_id=self.request_id_of(body, headers),
            )
        choice = choices[0]
        message = choice.get("message") or {}
        calls = [
            tool_call_delta(call, position)
            for position, call in enumerate(message.get("tool_calls") or [])
        ]
        raw_finish = choice.get("finish_reason")
        return ChatDelta(
            text=_content_text(message.get("content")),
            reasoning=_reasoning_text(message),
            tool_calls=calls,
            finish_reason=self.finish_reason(raw_finish, bool(calls)) or "stop",
            usage=parse_usage(body.get("usage") or choice.get("usage")),
            request_id=self.request_id_of(body, headers),
            model=body.get("model") or request.model,
            metadata=self.response_extras(body, raw_finish),
        )

    def delta_from_choice(self, choice: dict[str, Any], reader: StreamReader) -> ChatDelta:
        """One streamed choice as an incremental delta (providers with other shapes override)."""
        piece = choice.get("delta") or {}
        return ChatDelta(
            text=_content_text(piece.get("content")),
            reasoning=_reasoning_text(piece),
            tool_calls=[
                reader.tool_call_piece(call, position)
                for position, call in enumerate(piece.get("tool_calls") or [])
            ],
        )

    def finish_reason(self, raw: Any, has_tool_calls: bool = False) -> FinishReason | None:
        if not raw or raw == "null":
            return None
        if raw in _INTERRUPTED:  # Zhipu's network_error: the model side failed mid-reply
            raise UpstreamUnavailableError(
                f"{self.provider} interrupted the reply (finish_reason {raw!r})",
                provider=self.provider,
                code=str(raw),
            )
        reason = _FINISH_REASONS.get(str(raw))
        if reason is None:  # never let an unknown ending pass for a complete answer
            logger.warning(
                "%s sent unknown finish_reason %r; reporting it as length", self.provider, raw
            )
            reason = "length"
        return "tool_calls" if reason == "stop" and has_tool_calls else reason


class StreamReader:
    """Per-stream state: tool-call pieces, and the finish reason and usage held for the end."""

    def __init__(
        self, worker: OpenAICompatibleWorker, request: ChatRequest, headers: Mapping[str, str]
    ) -> None:
        self.worker = worker
        self.model = request.model
        self.request_id = worker.request_id_of(None, headers)
        self.text = ""
        self.reasoning = ""
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.done = False
        self._headers = ToolCallHeaders()
        self._indexes: dict[str, int] = {}
        self.tool_calls_seen = False
        self.metadata: dict[str, Any] = {}

    def feed(self, data: str | bytes) -> Iterator[ChatDelta]:
        raw = data.encode() if isinstance(data, str) else data
        if raw.strip() == b"[DONE]":
            self.done = True
            return
        if not raw.strip():
            return
        chunk = _decode(raw)
        if not isinstance(chunk, dict):
            raise UpstreamUnavailableError(
                f"{self.worker.provider} sent a malformed stream chunk",
                provider=self.worker.provider,
            )
        self.worker.check_body(chunk)
        self.request_id = self.worker.request_id_of(chunk) or self.request_id
        self.model = chunk.get("model") or self.model
        choices = chunk.get("choices") or []
        raw_finish = choices[0].get("finish_reason") if choices else None
        self.metadata.update(self.worker.response_extras(chunk, raw_finish))
        usage = parse_usage(chunk.get("usage") or (choices[0].get("usage") if choices else None))
        if usage is not None:
            self.usage = usage  # the latest wins: some providers send running totals
        for choice in choices[:1]:
            delta = self.worker.delta_from_choice(choice, self)
            delta.tool_calls = self._headers.dedupe(delta.tool_calls)
            self.text += delta.text
            self.reasoning += delta.reasoning
            self.tool_calls_seen = self.tool_calls_seen or bool(delta.tool_calls)
            self.finish_reason = (
                self.worker.finish_reason(choice.get("finish_reason"), self.tool_calls_seen)
                or self.finish_reason
            )
            if delta.text or delta.reasoning or delta.tool_calls:
                yield delta

    def finish_delta(self) -> ChatDelta:
        return ChatDelta(
            finish_reason=self.finish_reason,
            usage=self.usage,
            request_id=self.request_id,
            model=self.model,
            metadata=self.metadata,
        )

    def finish(self) -> Iterator[ChatDelta]:
        if self.finish_reason is None:
            if not self.done:
                raise UpstreamUnavailableError(
                    f"the {self.worker.provider} stream ended before the reply was finished",
                    provider=self.worker.provider,
                    request_id=self.request_id,
                )
            self.finish_reason = "tool_calls" if self.tool_calls_seen else "stop"
        yield self.finish_delta()

    def tool_call_piece(self, call: dict[str, Any], position: int) -> ToolCallDelta:
        """A streamed tool-call piece; providers that omit `index` are indexed by call id."""
        index = call.get("index")
        if not isinstance(index, int):
            call_id = call.get("id")
            if call_id:
                index = self._indexes.setdefault(call_id, len(self._indexes))
            else:
                index = max(self._indexes.values(), default=position)
        elif call.get("id"):
            self._indexes.setdefault(call["id"], index)
        return tool_call_delta(call, index)


class OpenAICompatibleEmbeddingWorker(OpenAICompatibleClient, EmbeddingWorker):
    """Embeddings over `POST {base_url}/embeddings`, batched to each model's limit."""

    embeddings_path: ClassVar[str] = "/embeddings"
    default_batch_size: ClassVar[int] = 256
    batch_limits: ClassVar[Mapping[str, int]] = {}
    text_limits: ClassVar[Mapping[str, TextLimit]] = {}
    """Documented per-text limits by model, checked before sending (see `limits`)."""

    def batch_limit(self, model: str) -> int:
        return self.batch_limits.get(model, self.default_batch_size)

    def _batches(self, request: EmbeddingRequest, batch_size: int | None) -> list[EmbeddingRequest]:
        check_texts(
            request.texts, self.text_limits.get(request.model), request.model, self.provider
        )
        return super()._batches(request, batch_size)

    def embedding_payload(self, request: EmbeddingRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": request.model, "input": request.texts}
        if request.dimensions is not None:
            payload["dimensions"] = request.dimensions
        payload.update(request.extra)
        return payload

    def parse_embeddings(
        self, body: Any, headers: Mapping[str, str], request: EmbeddingRequest
    ) -> EmbeddingResult:
        items = sorted(body.get("data") or [], key=lambda item: item.get("index", 0))
        return self._result(
            [item["embedding"] for item in items], body.get("usage"), body, headers, request
        )

    def _result(
        self,
        vectors: list[list[float]],
        raw_usage: Any,
        body: Any,
        headers: Mapping[str, str],
        request: EmbeddingRequest,
    ) -> EmbeddingResult:
        request_id = self.request_id_of(body, headers)
        if len(vectors) != len(request.texts):
            raise UpstreamUnavailableError(
                f"{self.provider} returned {len(vectors)} embeddings for {len(request.texts)} texts",
                provider=self.provider,
                request_id=request_id,
            )
        usage = parse_usage(raw_usage)
        if usage is not None:
            usage = Usage(
                input_tokens=usage.input_tokens or usage.total_tokens,
                total_tokens=usage.total_tokens,
            )
        return EmbeddingResult(
            vectors=vectors, usage=usage, request_id=request_id, model=request.model
        )

    def _embed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        body, headers = self._post(self.embeddings_path, self.embedding_payload(request))
        return self.parse_embeddings(body, headers, request)

    async def _aembed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        body, headers = await self._apost(self.embeddings_path, self.embedding_payload(request))
        return self.parse_embeddings(body, headers, request)


# -- helpers ------------------------------------------------------------------------------------
def parse_usage(raw: Any) -> Usage | None:
    """OpenAI-style usage (also input/output naming and top-level cached_tokens) as `Usage`."""
    if not isinstance(raw, Mapping):
        return None
    prompt = raw.get("prompt_tokens") or raw.get("input_tokens") or 0
    completion = raw.get("completion_tokens") or raw.get("output_tokens") or 0
    total = raw.get("total_tokens") or prompt + completion
    if not (prompt or completion or total):
        return None
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, Mapping) else None
    reasoning = (
        completion_details.get("reasoning_tokens")
        if isinstance(completion_details, Mapping)
        else None
    )
    if cached is None:  # Moonshot / DashScope: top level; DeepSeek: prompt_cache_hit_tokens
        cached = raw.get("cached_tokens", raw.get("prompt_cache_hit_tokens"))
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=total,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
    )


def tool_call_delta(call: Mapping[str, Any], index: int) -> ToolCallDelta:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, (dict, list)):  # a few servers send parsed arguments
        arguments = json.dumps(arguments, ensure_ascii=False)
    return ToolCallDelta(
        index=index,
        id=call.get("id") or None,
        name=function.get("name") or None,
        arguments=arguments or "",
    )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def _reasoning_text(message: Mapping[str, Any]) -> str:
    """reasoning_content (DeepSeek, Zhipu, Moonshot, Ark, ...) or reasoning (newer vLLM, Ollama)."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:  # also raised for invalid UTF-8
        return raw.decode("utf-8", "replace")


def _encode(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload)
    except TypeError:  # e.g. non-string keys: let the stdlib say what it accepts
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def _sse_data(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The `data` of each server-sent event, multi-line data joined with newlines.

    Fields other than `data` are not used by OpenAI-style streams and are skipped; an event cut
    off before its blank line is dropped, as the SSE spec says.
    """
    data: list[bytes] = []
    rest = b""
    async for piece in content.iter_any():  # whatever arrived: usually several whole events
        lines = (rest + piece if rest else piece).split(b"\n")
        rest = lines.pop()  # the unfinished last line
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                if data:
                    yield data[0] if len(data) == 1 else b"\n".join(data)
                    data = []
            elif line[:5] == b"data:":
                value = line[5:]
                data.append(value[1:] if value[:1] == b" " else value)


class _Connector(aiohttp.TCPConnector):
    """A session left open when its event loop ends (one loop per test, say) is no error: the
    loop's sockets went with it. Counting the connector closed then keeps aiohttp from
    reporting "Unclosed client session" when the session is collected."""

    @property
    def closed(self) -> bool:
        return self._closed or self._loop.is_closed()

    def __del__(self, _warnings: Any = None) -> None:
        with contextlib.suppress(Exception):  # close what is left, quietly
            if not self._closed and self._conns:
                self._close()


def _is_event_stream(response: httpx.Response) -> bool:
    return response.status_code < 400 and "text/event-stream" in response.headers.get(
        "content-type", ""
    )


def _status_of(error: Any) -> int:
    """The HTTP status an in-body error stands for (vLLM puts it in `code`)."""
    if isinstance(error, Mapping):
        for key in ("status", "code"):
            value = error.get(key)
            if isinstance(value, int) and 400 <= value < 600:
                return value
            if isinstance(value, str) and value.isdigit() and 400 <= int(value) < 600:
                return int(value)
    return 500


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(code, type, message) from the error shapes providers use."""
    if isinstance(body, str):
        return None, None, body.strip()[:500] or None
    if not isinstance(body, Mapping):
        return None, None, None
    error = body.get("error", body)
    if isinstance(error, str):
        return None, None, error
    if not isinstance(error, Mapping):
        return None, None, None
    message = error.get("message") or error.get("msg") or error.get("detail") or body.get("message")
    if isinstance(message, (list, dict)):
        message = json.dumps(message, ensure_ascii=False)
    code = error.get("code")
    kind = error.get("type")
    return (
        (str(code) if code not in (None, "") else None),
        (str(kind) if kind else None),
        (str(message) if message else None),
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None
