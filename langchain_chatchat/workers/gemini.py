"""Google Gemini (the Gemini Developer API, generativelanguage.googleapis.com) through the
official `google-genai` SDK.

Translation: OpenAI-style turns become `contents` with roles user/model (system text goes to
`systemInstruction`, tool results become `functionResponse` parts of a user turn), sampling and
output options go to `generationConfig`, tools to `functionDeclarations` + `toolConfig`. Gemini
streams are incremental; function calls arrive whole, each in one part.

Transport notes (read from the SDK source, google/genai/_api_client.py):
- the SDK's own retries are switched off (`HttpRetryOptions(attempts=1)`, which also stops its
  implicit aiohttp reconnect-and-sleep); `RetryPolicy` in the base class retries instead;
- the SDK's `HttpOptions.timeout` is a total deadline on aiohttp and is also sent to the server
  as `X-Server-Timeout`, which would cut long streams. Our `timeout` is per read instead: an
  httpx request hook on the sync client, `asyncio.wait_for` around each async step.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import httpx
import pydantic

from langchain_chatchat.workers.base import ChatWorker, EmbeddingWorker, MessageRules
from langchain_chatchat.workers.content import MIB, MediaRules, pattern
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ChatchatError,
    ContentFilterError,
    ContextLengthError,
    ErrorTable,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
    transport_errors,
)
from langchain_chatchat.workers.types import (
    ChatDelta,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
    ToolCallDelta,
    Usage,
    WorkerMessage,
)

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
PROVIDER = "gemini"
EMBEDDING_BATCH_LIMIT = 100
"""batchEmbedContents refuses more: "BatchEmbedContentsRequest.requests: at most 100 requests can
be in one batch" (quoted in langchain-ai/langchainjs#4491, weaviate/weaviate#11277)."""

# Gemini 3 refuses a replayed function call without its thought signature
# (https://ai.google.dev/gemini-api/docs/thought-signatures). LangChain and OpenAI messages have
# no place for one, so a worker remembers the signatures of the calls it received (by tool-call
# id, a bounded number) and sends them back with the same calls; for calls it never saw (another
# process, another model) it sends the documented sentinel that skips the check. Base64url of the
# sentinel is itself, so the SDK's bytes field carries it verbatim on the wire.
_SKIP_SIGNATURE = base64.urlsafe_b64decode("skip_thought_signature_validator")
_NEEDS_SIGNATURE = re.compile(r"^(models/)?gemini-3", re.IGNORECASE)
_REMEMBERED_SIGNATURES = 4096

_FILTERED = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
}
_MALFORMED = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"}
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# Per-call extras that map onto GenerateContentConfig fields of the same name.
_CONFIG_EXTRAS = ("top_k", "presence_penalty", "frequency_penalty", "safety_settings")
# Per-call extras that go to GenerateContentConfig.thinking_config.
_THINKING_EXTRAS = ("thinking_budget", "include_thoughts", "thinking_level")
_MAX_STOP = 5  # GenerationConfig.stopSequences: "A set of up to 5 character sequences"
# Accepted for OpenAI compatibility; Gemini has no equivalent and decides by itself.
_IGNORED_EXTRAS = ("parallel_tool_calls",)

T = TypeVar("T")
Config = TypeVar("Config", bound=pydantic.BaseModel)

if TYPE_CHECKING:  # imported at run time by the functions that use them (see _GeminiClient)
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types


class _GeminiClient:
    """One `genai.Client` per worker: credentials, endpoint, per-read timeouts, no SDK retries.

    The SDK is imported when a worker is built, not with the package (it takes about a second).
    The client is built on first use: building one loads CA certificates three times (the SDK's
    httpx and aiohttp contexts, our httpx client), which a model that is never called should not
    pay for.
    """

    provider = PROVIDER
    timeout: float | None

    def _init_client(self, api_key: str | None, base_url: str | None) -> None:
        if not api_key:
            raise AuthenticationError(
                "no Gemini API key: pass api_key=... or set GEMINI_API_KEY (or GOOGLE_API_KEY)",
                provider=PROVIDER,
            )
        import google.genai  # noqa: F401  # here, not in the first request (an event loop's)

        self._api_key = api_key
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._sdk: genai.Client | None = None
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def _client(self) -> genai.Client:
        from google import genai
        from google.genai import types

        with self._lock:
            if self._sdk is None:
                hooks = [_per_read_timeout(self.timeout)] if self.timeout is not None else []
                # Our own sync client pins the backend to httpx (the SDK picks the httpx2 fork
                # when installed) and carries the per-read timeout. Async calls use the SDK's
                # aiohttp sessions, one per event loop.
                self._http = httpx.Client(event_hooks={"request": hooks})
                self._sdk = genai.Client(
                    api_key=self._api_key,
                    vertexai=False,
                    http_options=types.HttpOptions(
                        base_url=self.base_url + "/",
                        retry_options=types.HttpRetryOptions(attempts=1),
                        httpx_client=self._http,
                    ),
                )
            return self._sdk

    def close(self) -> None:
        if self._sdk is not None:
            self._sdk.close()
        if self._http is not None:
            self._http.close()

    async def aclose(self) -> None:
        """Close the SDK's async sessions (one per event loop)."""
        if self._sdk is not None:
            await self._sdk.aio.aclose()

    async def _within(self, step: Awaitable[T]) -> T:
        if self.timeout is None:
            return await step
        return await asyncio.wait_for(step, self.timeout)


def _per_read_timeout(seconds: float) -> Any:
    """An httpx request hook giving every request `seconds` per connect/read/write, never a total
    (the SDK sends `timeout=None` with each request, which would disable httpx's timeouts)."""
    timeout = httpx.Timeout(seconds).as_dict()

    def hook(request: httpx.Request) -> None:
        request.extensions["timeout"] = timeout

    return hook


class GeminiWorker(_GeminiClient, ChatWorker):
    # System text goes to systemInstruction (leading system turns are merged into one).
    message_rules = MessageRules(system="first", images=True)
    # Gemini docs, "Image understanding": every Gemini model takes PNG, JPEG, WEBP, HEIC and HEIF
    # images; inline data counts towards the 20 MB request limit. "Audio understanding" and
    # "Video understanding": audio and video on every Gemini model; a video may also be sent as
    # its frames (images). `detail` is OpenAI's and has no Gemini equivalent.
    media_rules = MediaRules(
        formats=frozenset({"png", "jpeg", "webp", "heic", "heif"}),
        max_image_bytes=20 * MIB,
        detail=False,
        video_models=pattern(r"gemini"),
        audio_models=pattern(r"gemini"),
        video_frames=True,
        # "Video understanding": video/mp4, mpeg, mov, avi, x-flv, mpg, webm, wmv, 3gpp; inline
        # data within the 20 MB request limit
        video_formats=frozenset({"mp4", "mpeg", "mov", "avi", "flv", "webm", "wmv", "3gp"}),
        # "Function calling", multimodal function responses: Gemini 3 models take images in
        # a function response's `parts` (see `_tool_media`); earlier models refuse them.
        tool_images=_NEEDS_SIGNATURE,
    )

    def __init__(self, *, api_key: str | None, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_client(api_key, base_url)
        self._signatures: dict[str, bytes] = {}
        self._signatures_lock = threading.Lock()

    def _remember_signature(self, call_id: str, signature: bytes) -> None:
        with self._signatures_lock:
            self._signatures[call_id] = signature
            if len(self._signatures) > _REMEMBERED_SIGNATURES:
                del self._signatures[next(iter(self._signatures))]

    def _known_signatures(self, messages: list[WorkerMessage]) -> dict[str, bytes]:
        ids = [call.id for message in messages for call in message.tool_calls]
        with self._signatures_lock:
            return {i: self._signatures[i] for i in ids if i in self._signatures}

    # -- request translation ---------------------------------------------------------------
    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        """`model`, `contents` and `config` for `generate_content(_stream)`."""
        system, contents = to_gemini_contents(
            request.messages,
            signatures=self._known_signatures(request.messages),
            require_signatures=bool(_NEEDS_SIGNATURE.match(request.model)),
        )
        if request.stop and len(request.stop) > _MAX_STOP:
            raise BadRequestError(
                f"Gemini accepts at most {_MAX_STOP} stop sequences",
                provider=PROVIDER,
                param="stop",
            )
        config: dict[str, Any] = {"automatic_function_calling": {"disable": True}}
        if system:
            config["system_instruction"] = system
        for name, field in (
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("max_tokens", "max_output_tokens"),
            ("seed", "seed"),
            ("stop", "stop_sequences"),
        ):
            value = getattr(request, name)
            if value is not None:
                config[field] = value
        config.update(_response_format(request.response_format))
        if request.tools:
            config["tools"] = [{"function_declarations": _declarations(request.tools)}]
            if request.tool_choice is not None:
                config["tool_config"] = {
                    "function_calling_config": _tool_choice(request.tool_choice)
                }
        config.update(_extras(request.extra))
        from google.genai import types

        parsed = _validated(types.GenerateContentConfig, config, "generation")
        return {"model": request.model, "contents": contents, "config": parsed}

    # -- transport -------------------------------------------------------------------------
    def _call(self, request: ChatRequest) -> Iterator[ChatDelta]:
        arguments = self._arguments(request)
        reader = _ResponseReader(request.model, self._remember_signature)
        with _sdk_errors():
            if not request.stream:
                yield from reader.read(self._client.models.generate_content(**arguments))
                reader.finish()
                return
            stream = self._client.models.generate_content_stream(**arguments)
            try:
                for response in stream:
                    yield from reader.read(response)
            finally:
                stream.close()  # type: ignore[attr-defined]  # a generator
            reader.finish()

    async def _acall(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        arguments = self._arguments(request)
        reader = _ResponseReader(request.model, self._remember_signature)
        models = self._client.aio.models
        with _sdk_errors():
            if not request.stream:
                response = await self._within(models.generate_content(**arguments))
                for delta in reader.read(response):
                    yield delta
                reader.finish()
                return
            stream = await self._within(models.generate_content_stream(**arguments))
            try:
                while True:
                    try:
                        response = await self._within(anext(stream))
                    except StopAsyncIteration:
                        break
                    for delta in reader.read(response):
                        yield delta
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            reader.finish()


# -- messages --------------------------------------------------------------------------------
def to_gemini_contents(
    messages: list[WorkerMessage],
    *,
    signatures: Mapping[str, bytes] | None = None,
    require_signatures: bool = False,
) -> tuple[str | None, list[dict[str, Any]]]:
    """(system instruction, contents) in the SDK's dict form.

    Consecutive tool results become one user turn of `functionResponse` parts, one per call, as
    Gemini pairs them with the function-call turn before. Function calls carry their thought
    signature from `signatures` (by tool-call id); with `require_signatures` (Gemini 3) the first
    call of a model turn without one carries the skip-validation sentinel.
    """
    signatures = signatures or {}
    system: str | None = None
    contents: list[dict[str, Any]] = []
    names_by_call_id: dict[str, str] = {}
    for message in messages:
        if message.role == "system":
            system = message.text()
            continue
        if message.role == "tool":
            name = message.name or names_by_call_id.get(message.tool_call_id or "") or ""
            answer = {
                "function_response": {
                    "name": name,
                    "response": _tool_response(message),
                    **_tool_media(message),
                }
            }
            previous = contents[-1] if contents else None
            if previous is not None and previous.get("_tool_results"):
                previous["parts"].append(answer)
            else:
                contents.append({"role": "user", "parts": [answer], "_tool_results": True})
            continue
        if message.role == "assistant":
            parts: list[dict[str, Any]] = []
            if message.text():
                parts.append({"text": message.text()})
            for position, call in enumerate(message.tool_calls):
                names_by_call_id[call.id] = call.name
                part: dict[str, Any] = {
                    "function_call": {"name": call.name, "args": _arguments(call.arguments)}
                }
                if call.id in signatures:
                    part["thought_signature"] = signatures[call.id]
                elif require_signatures and position == 0:
                    part["thought_signature"] = _SKIP_SIGNATURE
                parts.append(part)
            if parts:  # an empty assistant turn says nothing; Gemini refuses empty `parts`
                contents.append({"role": "model", "parts": parts})
            continue
        contents.append({"role": "user", "parts": _user_parts(message)})
    for content in contents:
        content.pop("_tool_results", None)
    return system, contents


def _user_parts(message: WorkerMessage) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": message.content}]
    parts: list[dict[str, Any]] = []
    for part in message.content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url":
            url = part.get("image_url", {})
            parts.append(_media_part(url.get("url", "") if isinstance(url, dict) else str(url)))
        elif kind == "input_audio":  # OpenAI's {"data": base64, "format": "wav" | "mp3"}
            audio = part.get("input_audio") or {}
            raw = _base64(str(audio.get("data", "")), "audio")
            parts.append(
                {"inline_data": {"mime_type": f"audio/{audio.get('format', 'wav')}", "data": raw}}
            )
        elif kind == "video":  # a video URL, or its frames as a list of image URLs
            video = part.get("video")
            frames = video if isinstance(video, list) else [video]
            parts += [_media_part(str(url), video=not isinstance(video, list)) for url in frames]
        else:
            raise BadRequestError(
                f"Gemini messages accept text, images, audio and video, not {kind!r} parts",
                provider=PROVIDER,
                param="messages",
            )
    return parts


def _media_part(url: str, *, video: bool = False) -> dict[str, Any]:
    """A data URL becomes `inlineData`; an http(s) URL becomes `fileData` (Gemini fetches it:
    File API URIs, YouTube links, public URLs)."""
    what = "a video" if video else "an image"
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";")[0] or ("video/mp4" if video else "image/jpeg")
        return {"inline_data": {"mime_type": mime, "data": _base64(data, f"{what} data URL")}}
    if url.startswith(("http://", "https://", "gs://")):
        return {"file_data": {"file_uri": url, "mime_type": _mime_from_url(url, video=video)}}
    raise BadRequestError(
        f"{what} must be a data: URL or an http(s) URL", provider=PROVIDER, param="messages"
    )


def _base64(data: str, what: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(
            f"{what} does not hold valid base64", provider=PROVIDER, param="messages"
        ) from None


_MIME_BY_SUFFIX = {
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "mov": "video/mov",
    "webm": "video/webm",
    "mpeg": "video/mpeg",
}


def _mime_from_url(url: str, *, video: bool) -> str:
    suffix = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return _MIME_BY_SUFFIX.get(suffix, "video/mp4" if video else "image/jpeg")


def _tool_response(message: WorkerMessage) -> dict[str, Any]:
    """`functionResponse.response` must be a JSON object: a tool's JSON object is sent as is,
    anything else is wrapped as {"result": ...}."""
    text = message.text()
    try:
        value = json.loads(text)
    except ValueError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


_TOOL_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def _tool_media(message: WorkerMessage) -> dict[str, Any]:
    """A tool result's images as `functionResponse.parts` (Gemini docs, "Function calling":
    multimodal function responses on Gemini 3; image/png, image/jpeg, image/webp, inline only —
    `FunctionResponsePart.fileData` "is not supported in Gemini API")."""
    if isinstance(message.content, str):
        return {}
    parts = []
    for part in message.content:
        if part.get("type") != "image_url":
            continue
        url = str((part.get("image_url") or {}).get("url", ""))
        if not url.startswith("data:"):
            raise BadRequestError(
                "Gemini takes images in tool results inline only; send a base64 data URL",
                provider=PROVIDER,
                param="messages",
            )
        blob = _media_part(url)["inline_data"]
        if blob["mime_type"] not in _TOOL_IMAGE_TYPES:
            raise BadRequestError(
                f"Gemini takes png, jpeg or webp images in tool results, not {blob['mime_type']}",
                provider=PROVIDER,
                param="messages",
            )
        parts.append({"inline_data": blob})
    return {"parts": parts} if parts else {}


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        raise BadRequestError(
            "a tool call's arguments are not valid JSON", provider=PROVIDER, param="messages"
        ) from None
    if not isinstance(value, dict):
        raise BadRequestError(
            "a tool call's arguments must be a JSON object", provider=PROVIDER, param="messages"
        )
    return value


# -- parameters --------------------------------------------------------------------------------
def _declarations(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools → Gemini function declarations with a plain JSON Schema."""
    declarations = []
    for tool in tools:
        function = tool.get("function", tool)
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if parameters and parameters.get("properties"):
            declaration["parameters_json_schema"] = parameters
        declarations.append(declaration)
    return declarations


def _tool_choice(choice: str) -> dict[str, Any]:
    """auto/none/required → AUTO/NONE/ANY; a tool name → ANY limited to that function."""
    if choice in _TOOL_MODES:
        return {"mode": _TOOL_MODES[choice]}
    return {"mode": "ANY", "allowed_function_names": [choice]}


def _response_format(response_format: dict[str, Any] | None) -> dict[str, Any]:
    kind = (response_format or {}).get("type")
    if kind in (None, "text"):
        return {}
    if kind == "json_object":
        return {"response_mime_type": "application/json"}
    if kind == "json_schema":
        schema = (response_format or {}).get("json_schema", {}).get("schema")
        config: dict[str, Any] = {"response_mime_type": "application/json"}
        if schema:
            config["response_json_schema"] = schema
        return config
    raise BadRequestError(
        f"unsupported response_format type {kind!r}", provider=PROVIDER, param="response_format"
    )


def _extras(extra: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    thinking: dict[str, Any] = {}
    for name, value in extra.items():
        if value is None or name in _IGNORED_EXTRAS:
            continue
        if name in _THINKING_EXTRAS:
            thinking[name] = value
        elif name in _CONFIG_EXTRAS:
            config[name] = value
        else:
            raise BadRequestError(
                f"Gemini does not take the parameter {name!r}", provider=PROVIDER, param=name
            )
    if thinking:
        config["thinking_config"] = thinking
    return config


def _validated(config_type: type[Config], config: dict[str, Any], purpose: str) -> Config:
    """`config` as the SDK's `config_type`; parameters it rejects are a 400."""
    try:
        return config_type.model_validate(config)
    except pydantic.ValidationError as error:
        raise BadRequestError(
            f"invalid Gemini {purpose} parameters: {_first_error(error)}", provider=PROVIDER
        ) from None


def _first_error(error: pydantic.ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ()))
    return f"{location}: {first.get('msg', 'invalid')}" if location else first.get("msg", "")


# -- responses ---------------------------------------------------------------------------------
class _ResponseReader:
    """Turns GenerateContentResponses (one, or a stream's incremental chunks) into deltas.

    Gemini repeats the running `usageMetadata` on stream chunks; only the finishing delta carries
    it, so LangChain's chunk addition does not over-count. Tool-call indexes run across the whole
    reply, since each call arrives whole in its own part.
    """

    def __init__(self, model: str, remember: Callable[[str, bytes], None]) -> None:
        self._model = model
        self._remember = remember
        self._calls = 0
        self._usage: Usage | None = None
        self._finished = False

    def read(self, response: types.GenerateContentResponse) -> Iterator[ChatDelta]:
        request_id = response.response_id or None
        if response.usage_metadata is not None:
            self._usage = _usage(response.usage_metadata)
        if not response.candidates:
            feedback = response.prompt_feedback
            if feedback is not None and feedback.block_reason is not None:
                reason = _enum_value(feedback.block_reason)
                raise ContentFilterError(
                    feedback.block_reason_message or f"Gemini blocked the prompt ({reason})",
                    provider=PROVIDER,
                    code=reason,
                    request_id=request_id,
                )
            return
        candidate = response.candidates[0]
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCallDelta] = []
        for part in (candidate.content.parts if candidate.content else None) or []:
            if part.function_call is not None:
                call = part.function_call
                call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"
                if part.thought_signature:
                    self._remember(call_id, part.thought_signature)
                calls.append(
                    ToolCallDelta(
                        index=self._calls,
                        id=call_id,
                        name=call.name or "",
                        arguments=json.dumps(call.args or {}, ensure_ascii=False),
                    )
                )
                self._calls += 1
            elif part.text:
                (reasoning if part.thought else text).append(part.text)
        finish_reason = None
        if candidate.finish_reason is not None:
            finish_reason = self._finish_reason(_enum_value(candidate.finish_reason), request_id)
        delta = ChatDelta(
            text="".join(text),
            reasoning="".join(reasoning),
            tool_calls=calls,
            finish_reason=finish_reason,  # type: ignore[arg-type]
            usage=self._usage if finish_reason else None,
            request_id=request_id,
            model=self._model,
        )
        if delta.text or delta.reasoning or delta.tool_calls or delta.finish_reason:
            yield delta

    def _finish_reason(self, reason: str, request_id: str | None) -> str:
        """STOP → stop (tool_calls when the reply called tools), MAX_TOKENS → length, safety
        reasons → content_filter; any other reason is kept, lower-cased, never "stop"."""
        self._finished = True
        if reason in _MALFORMED:
            raise UpstreamServerError(
                f"Gemini produced an invalid function call ({reason})",
                provider=PROVIDER,
                code=reason,
                request_id=request_id,
            )
        if reason == "STOP":
            return "tool_calls" if self._calls else "stop"
        if reason == "MAX_TOKENS":
            return "length"
        if reason in _FILTERED:
            return "content_filter"
        return reason.lower()

    def finish(self) -> None:
        if not self._finished:
            raise UpstreamConnectionError(
                "the Gemini reply ended without a finish reason", provider=PROVIDER
            )


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


def _usage(metadata: types.GenerateContentResponseUsageMetadata) -> Usage:
    """promptTokenCount includes cached tokens; output counts thoughts, as OpenAI's does."""
    prompt = metadata.prompt_token_count or 0
    thoughts = metadata.thoughts_token_count
    output = (metadata.candidates_token_count or 0) + (thoughts or 0)
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        total_tokens=metadata.total_token_count or prompt + output,
        reasoning_tokens=thoughts,
        cached_tokens=metadata.cached_content_token_count,
        **_modality_tokens(metadata.prompt_tokens_details),
    )


_MODALITY_KEYS = {"IMAGE": "image_tokens", "AUDIO": "audio_tokens", "VIDEO": "video_tokens"}


def _modality_tokens(details: list[types.ModalityTokenCount] | None) -> dict[str, int]:
    """`promptTokensDetails` (a list of {modality, tokenCount}; API reference, UsageMetadata) as
    `Usage` media counts; text and document tokens stay only in the input total."""
    counts: dict[str, int] = {}
    for detail in details or []:
        key = _MODALITY_KEYS.get(_enum_value(detail.modality))
        if key is not None and detail.token_count:
            counts[key] = counts.get(key, 0) + detail.token_count
    return counts


# -- errors ------------------------------------------------------------------------------------
# google.rpc status names → typed errors (https://ai.google.dev/gemini-api/docs/troubleshooting).
# An invalid key is INVALID_ARGUMENT with reason API_KEY_INVALID: "API key not valid. Please pass
# a valid API key." / "API Key not found. ..." (quoted in continuedev/continue#8516,
# google-gemini/gemini-cli#25198); an over-long prompt is INVALID_ARGUMENT "The input token count
# (N) exceeds the maximum number of tokens allowed (M)." (unverified wording).
GEMINI_ERRORS = ErrorTable(
    codes={
        "INVALID_ARGUMENT": BadRequestError,
        "FAILED_PRECONDITION": PermissionDeniedError,  # free tier not in this region, billing off
        "OUT_OF_RANGE": BadRequestError,
        "UNAUTHENTICATED": AuthenticationError,
        "PERMISSION_DENIED": PermissionDeniedError,
        "NOT_FOUND": NotFoundError,
        "RESOURCE_EXHAUSTED": RateLimitError,
        "INTERNAL": UpstreamServerError,
        "UNAVAILABLE": UpstreamServerError,
        "CANCELLED": UpstreamServerError,
        "DEADLINE_EXCEEDED": UpstreamTimeoutError,
    },
    messages=(
        (re.compile(r"API key not valid|API Key not found", re.IGNORECASE), AuthenticationError),
        (re.compile(r"input token count.*exceeds", re.IGNORECASE), ContextLengthError),
    ),
)


def error_from_api(error: genai_errors.APIError) -> ChatchatError:
    """The typed error for a google.rpc Status body ({"error": {"code", "message", "status"}})."""
    message = error.message or f"Gemini returned HTTP {error.code}"
    return GEMINI_ERRORS.error(
        int(error.code or 500),
        message,
        code=str(error.status) if error.status else None,
        provider=PROVIDER,
        retry_after=_retry_delay(_details(error.details)),
    )


def _details(body: Any) -> list[dict[str, Any]]:
    error = body.get("error", body) if isinstance(body, dict) else {}
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """google.rpc.RetryInfo's retryDelay, a Duration such as "37s" or "0.5s"."""
    for detail in details:
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            with contextlib.suppress(ValueError):
                return float(delay[:-1])
    return None


@contextlib.contextmanager
def _sdk_errors() -> Iterator[None]:
    """Map the SDK's APIError and its transports' exceptions (httpx, aiohttp) to typed errors."""
    from google.genai import errors as genai_errors

    with transport_errors(
        PROVIDER,
        "Gemini",
        timeouts=(httpx.TimeoutException, asyncio.TimeoutError, aiohttp.ServerTimeoutError),
        failures=(httpx.HTTPError, aiohttp.ClientError, ConnectionError),
        malformed=(json.JSONDecodeError, genai_errors.UnknownApiResponseError),
    ):
        try:
            yield
        except genai_errors.APIError as error:
            raise error_from_api(error) from None


# -- embeddings ----------------------------------------------------------------------------------
_TASK_TYPES = {"document": "RETRIEVAL_DOCUMENT", "query": "RETRIEVAL_QUERY"}


class GeminiEmbeddingWorker(_GeminiClient, EmbeddingWorker):
    """batchEmbedContents (what the SDK's `embed_content` calls), at most 100 texts a request."""

    default_batch_size = EMBEDDING_BATCH_LIMIT

    def __init__(self, *, api_key: str | None, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_client(api_key, base_url)

    def _arguments(self, request: EmbeddingRequest) -> dict[str, Any]:
        config: dict[str, Any] = {"task_type": _TASK_TYPES[request.text_type], **request.extra}
        if request.dimensions is not None:
            config["output_dimensionality"] = request.dimensions
        from google.genai import types

        parsed = _validated(types.EmbedContentConfig, config, "embedding")
        return {"model": request.model, "contents": list(request.texts), "config": parsed}

    def _embed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        with _sdk_errors():
            response = self._client.models.embed_content(**self._arguments(request))
        return _embedding_result(response, request)

    async def _aembed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        with _sdk_errors():
            response = await self._within(
                self._client.aio.models.embed_content(**self._arguments(request))
            )
        return _embedding_result(response, request)


def _embedding_result(
    response: types.EmbedContentResponse, request: EmbeddingRequest
) -> EmbeddingResult:
    vectors = [list(e.values or []) for e in response.embeddings or []]
    if len(vectors) != len(request.texts):
        raise UpstreamServerError(
            f"Gemini returned {len(vectors)} embeddings for {len(request.texts)} texts",
            provider=PROVIDER,
        )
    return EmbeddingResult(vectors=vectors, usage=None, model=request.model)
