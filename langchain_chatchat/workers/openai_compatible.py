"""Translation for every OpenAI-style chat/embeddings API, specialised by small class attributes.

Most hosted providers (Zhipu, Qianfan, Ark, DeepSeek, Moonshot, MiniMax, Baichuan, Spark,
Azure) and local servers (vLLM, Ollama, Xinference, LocalAI, One-API) offer an OpenAI-shaped
`/chat/completions`. They differ in a handful of places, each a class attribute or a small
hook here, plus the provider's `Endpoint` (identity, auth, error codes; see endpoint.py):

- where: `chat_path`, `embeddings_path`;
- what they accept: `message_rules`, `tool_choices`, `response_formats`, `max_stop`,
  `include_usage_option`, `echo_reasoning`, and `adjust_payload()` for the rest;
- the provider's documented request rules: `sampling_ranges()` (clamped),
  `max_tokens_field()`, `tool_choice_forms()`, `thinking_mode()` / `disable_thinking()` (no
  forced tools while thinking), `reasoning_models` (OpenAI o-series / gpt-5 parameters);
- what they send back: `delta_from_choice()` for streams that are not plain deltas,
  `metadata_keys` for reply fields worth passing on (web-search results).

This module only translates (payload in, deltas out); bytes travel through the worker's
`Transport`. Streams yield incremental deltas; usage and the finish reason are held back and
emitted exactly once, on the final delta, whether the provider sends usage in a trailing
`choices: []` chunk (OpenAI's `include_usage`), on the finishing chunk, inside the choice
(Moonshot), or not at all (several local servers).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Literal

from langchain_chatchat.workers.base import ChatWorker, EmbeddingWorker, MessageRules
from langchain_chatchat.workers.content import MediaRules, pattern
from langchain_chatchat.workers.endpoint import Endpoint, HTTPWorker, decode_json
from langchain_chatchat.workers.errors import (
    BadRequestError,
    UpstreamConnectionError,
    UpstreamServerError,
)
from langchain_chatchat.workers.limits import TextLimit, check_texts, split_by_request_tokens
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
    media_tokens,
)

logger = logging.getLogger(__name__)

ToolChoiceMode = Literal["auto", "none", "required", "named"]
ResponseFormat = Literal["json_object", "json_schema"]

OPENAI_COMPATIBLE = Endpoint(
    provider="openai_compatible",
    api_key_env="OPENAI_API_KEY",
    base_url_env="OPENAI_BASE_URL",
    api_key_required=False,
)
"""Any OpenAI-style server: Bearer key when given, errors mapped by status."""

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
# the inference system; Zhipu's network_error: the model side failed mid-reply. The text so far
# is incomplete, so the call fails (retryable).
_INTERRUPTED = frozenset({"insufficient_system_resource", "aborted", "network_error"})
_STANDARD_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "null"})


class OpenAICompatibleWorker(HTTPWorker, ChatWorker):
    """Chat over `POST {base_url}/chat/completions` with OpenAI's request and SSE shapes."""

    endpoint: ClassVar[Endpoint] = OPENAI_COMPATIBLE
    message_rules: ClassVar[MessageRules] = MessageRules(images=True)
    media_rules: ClassVar[MediaRules] = MediaRules(audio_models=pattern(r"audio|omni"))
    """OpenAI's rules (png/jpeg/gif/webp, `detail`, images in user turns only: a tool message
    takes text parts only, per the chat completions reference); any model, since a generic
    server's model names say nothing (its own 400 is mapped if it has no vision)."""
    chat_path: ClassVar[str] = "/chat/completions"
    include_usage_option: ClassVar[bool] = True
    """Send `stream_options: {"include_usage": true}` (providers that reject it set False)."""
    tool_choices: ClassVar[frozenset[ToolChoiceMode]] = frozenset(
        {"auto", "none", "required", "named"}
    )
    """The tool_choice forms the provider accepts; others are translated (see `convert_tool_choice`)."""
    response_formats: ClassVar[frozenset[ResponseFormat]] = frozenset(
        {"json_object", "json_schema"}
    )
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
    metadata_keys: ClassVar[tuple[str, ...]] = ()
    """Top-level reply fields passed on in `response_metadata` (e.g. Zhipu's `web_search`)."""

    # -- provider rules (overridden per provider) ---------------------------------------------
    def sampling_ranges(self, model: str) -> SamplingRanges:
        """The temperature / top_p ranges `model` accepts; values outside are clamped."""
        return {}

    def max_tokens_field(self, model: str) -> str:
        """The name the provider documents for the output-token limit of `model`."""
        if self.reasoning_models is not None and self.reasoning_models.match(model):
            return "max_completion_tokens"
        return "max_tokens"

    def tool_choice_forms(self, model: str) -> frozenset[ToolChoiceMode]:
        """The tool_choice forms `model` accepts (`tool_choices` unless a provider narrows it)."""
        return self.tool_choices

    def thinking_mode(self, request: ChatRequest) -> Literal["off", "switchable", "always"]:
        """Whether `request` runs with thinking on ("switchable": on, but it can be turned off
        for one call; "always": a thinking-only model). Thinking models refuse forced tools."""
        return "off"

    def disable_thinking(self, payload: dict[str, Any]) -> None:
        """Turn thinking off in `payload` (for a call that forces a tool)."""

    def response_extras(self, body: Mapping[str, Any], raw_finish: Any = None) -> dict[str, Any]:
        """What of a reply (or chunk) goes to `response_metadata` besides the standard fields:
        `metadata_keys`, and the provider's own finish reason when it is not a standard one."""
        extras = {key: body[key] for key in self.metadata_keys if body.get(key)}
        if isinstance(raw_finish, str) and raw_finish not in _STANDARD_FINISH:
            extras["provider_finish_reason"] = raw_finish
        return extras

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
        messages = [self.convert_message(m) for m in request.messages]
        payload: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
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
        payload.update(model=request.model, messages=messages, stream=request.stream)
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

    def convert_tool_choice(
        self,
        tools: list[dict[str, Any]],
        choice: str | None,
        allowed: frozenset[ToolChoiceMode] | None = None,
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
            body, headers = self.post_json(self.chat_path, payload)
            yield self.parse_completion(body, headers, request)
            return
        with self.stream_json(self.chat_path, payload) as reply:
            if reply.events is None:
                yield self.parse_completion(reply.body, reply.headers, request)
                return
            reader = StreamReader(self, request, reply.headers)
            for data in reply.events:
                yield from reader.feed(data)
            yield from reader.finish()

    async def _acall(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        payload = self.build_payload(request)
        if not request.stream:
            body, headers = await self.apost_json(self.chat_path, payload)
            yield self.parse_completion(body, headers, request)
            return
        async with self.astream_json(self.chat_path, payload) as reply:
            if reply.events is None:
                yield self.parse_completion(reply.body, reply.headers, request)
                return
            reader = StreamReader(self, request, reply.headers)
            async for data in reply.events:
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
            raise UpstreamServerError(
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
        if raw in _INTERRUPTED:
            raise UpstreamServerError(
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
        chunk = decode_json(raw)
        if not isinstance(chunk, dict):
            raise UpstreamServerError(
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
                raise UpstreamConnectionError(
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


class OpenAICompatibleEmbeddingWorker(HTTPWorker, EmbeddingWorker):
    """Embeddings over `POST {base_url}/embeddings`, batched to each model's limit."""

    endpoint: ClassVar[Endpoint] = OPENAI_COMPATIBLE
    embeddings_path: ClassVar[str] = "/embeddings"
    default_batch_size: ClassVar[int] = 256
    batch_limits: ClassVar[Mapping[str, int]] = {}
    text_limits: ClassVar[Mapping[str, TextLimit]] = {}
    """Documented per-text limits by model, checked before sending (see `limits`)."""

    def batch_limit(self, model: str) -> int:
        return self.batch_limits.get(model, self.default_batch_size)

    def _batches(self, request: EmbeddingRequest, batch_size: int | None) -> list[EmbeddingRequest]:
        limit = self.text_limits.get(request.model)
        check_texts(request.texts, limit, request.model, self.provider)
        return [
            replace(batch, texts=group)
            for batch in super()._batches(request, batch_size)
            for group in split_by_request_tokens(batch.texts, limit)
        ]

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
            raise UpstreamServerError(
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
        body, headers = self.post_json(self.embeddings_path, self.embedding_payload(request))
        return self.parse_embeddings(body, headers, request)

    async def _aembed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        body, headers = await self.apost_json(self.embeddings_path, self.embedding_payload(request))
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
        # OpenAI: prompt_tokens_details.audio_tokens; DashScope's compatible mode adds
        # image_tokens and video_tokens there
        **media_tokens(prompt_details),
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
