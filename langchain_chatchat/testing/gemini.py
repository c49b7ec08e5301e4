"""A wire-faithful emulator of the Gemini Developer API (generativelanguage.googleapis.com).

Written from the public API reference and the official SDK's wire handling:

* ``models.generateContent`` / ``models.streamGenerateContent`` (``?alt=sse``: ``data: {json}``
  events; without it a JSON array) and ``models.embedContent`` / ``models.batchEmbedContents``:
  https://ai.google.dev/api/generate-content , https://ai.google.dev/api/embeddings ;
* errors as google.rpc Status bodies ``{"error": {"code", "message", "status", "details"}}`` and
  the status table of https://ai.google.dev/gemini-api/docs/troubleshooting ;
* function calling, thinking and thought signatures:
  https://ai.google.dev/gemini-api/docs/function-calling , .../docs/thinking ,
  .../docs/thought-signatures ;
* the SDK (google-genai, google/genai/_api_client.py and errors.py): ``x-goog-api-key``
  header, ``data: `` prefixed stream lines, ``{"error": ...}`` stream chunks raised as APIError;
* media tokens (https://ai.google.dev/gemini-api/docs/tokens , "Multimodal tokens"): an image
  with both sides at most 384 px is 258 tokens, a larger one is cut into 768x768 tiles of 258
  tokens each; video 263 tokens per second, audio 32 per second; Gemini 3 counts an image as
  1120 tokens at its default (high) media resolution (.../docs/gemini-3, media_resolution;
  unverified). Usage splits the prompt by modality in ``promptTokensDetails``
  ([{modality, tokenCount}], API reference, UsageMetadata / ModalityTokenCount).

Inline images are decoded (Pillow) and inline videos sniffed, and the default reply names what
the last user turn held (format, size, hash), so a test can check it arrived intact. ``fileData``
URIs are not fetched: each counts at the single-tile / one-second minimum (unverified).

Messages quoted from public issues are cited where used. A rule or message the references do not
pin down is marked "unverified"; the emulator then takes the stricter side.

Point the SDK at it with
``genai.Client(api_key=..., http_options=types.HttpOptions(base_url=emu.base_url))``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from langchain_chatchat.testing.images import (
    Described,
    ImageProblem,
    SeenAudio,
    open_image,
    seeing,
)
from langchain_chatchat.testing.responder import (
    Responder,
    count_tokens,
    embed_text,
    split_tokens,
    tool_call_tokens,
)
from langchain_chatchat.testing.script import Fault, RecordedRequest, Reply, ToolCallReply
from langchain_chatchat.testing.server import EmulatorBase, TimedResponse
from langchain_chatchat.testing.videos import SeenVideo, sniff_video

__all__ = [
    "GEMINI_MODELS",
    "GeminiChatSpec",
    "GeminiEmbeddingSpec",
    "GeminiEmulator",
    "PromptBlocked",
]


@dataclass(frozen=True)
class GeminiChatSpec:
    """What the emulator knows of a generateContent model.

    ``thinking``: "none" (no thinking), "optional" (a thinking budget; 0 turns it off),
    "always" (budget ``budget_range``, 0 refused), "level" (Gemini 3 ``thinkingLevel``).
    ``thinks_by_default``: whether thinking runs when the request says nothing.
    ``signatures``: replayed function calls must carry their thought signature (Gemini 3).
    """

    max_input_tokens: int = 1_048_576
    max_output_tokens: int = 65_536
    thinking: Literal["none", "optional", "always", "level"] = "optional"
    thinks_by_default: bool = True
    budget_range: tuple[int, int] = (0, 24_576)
    signatures: bool = False
    image_tokens: int | None = None
    """Tokens per image at the default media resolution (Gemini 3); None: the 2.x tile rule."""
    multimodal_function_responses: bool = False
    """Whether a functionResponse may carry media `parts` (Gemini 3, "Function calling")."""


@dataclass(frozen=True)
class PromptBlocked:
    """A scripted answer that blocks the prompt: no candidates, ``promptFeedback.blockReason``
    (SAFETY, OTHER, BLOCKLIST, PROHIBITED_CONTENT, IMAGE_SAFETY; API reference, BlockReason)."""

    reason: str = "SAFETY"


@dataclass(frozen=True)
class GeminiEmbeddingSpec:
    """Largest (and default) output dimensionality of an embedding model."""

    dimension: int


# Model limits: https://ai.google.dev/gemini-api/docs/models ; thinking budgets per model:
# https://ai.google.dev/gemini-api/docs/thinking ("2.5 Pro: 128 to 32768, cannot turn off
# thinking"; "2.5 Flash: 0 to 24576"; "2.5 Flash Lite: 512 to 24576, does not think by default").
_GEMINI_3 = GeminiChatSpec(
    thinking="level", signatures=True, image_tokens=1120, multimodal_function_responses=True
)
GEMINI_MODELS: Mapping[str, GeminiChatSpec | GeminiEmbeddingSpec] = {
    "gemini-2.5-flash": GeminiChatSpec(),
    "gemini-2.5-flash-lite": GeminiChatSpec(thinks_by_default=False, budget_range=(512, 24_576)),
    "gemini-2.5-pro": GeminiChatSpec(thinking="always", budget_range=(128, 32_768)),
    "gemini-2.0-flash": GeminiChatSpec(max_output_tokens=8_192, thinking="none"),
    "gemini-3-pro-preview": _GEMINI_3,
    "gemini-3-flash-preview": _GEMINI_3,
    "gemini-embedding-001": GeminiEmbeddingSpec(3_072),
    "text-embedding-004": GeminiEmbeddingSpec(768),
}

_JSON = "application/json; charset=UTF-8"
_SSE = "text/event-stream"
_VERSIONS = ("v1beta", "v1")
# google.rpc code names by HTTP status (https://ai.google.dev/gemini-api/docs/troubleshooting).
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}

# Request fields by message (https://ai.google.dev/api/generate-content#request-body and
# #generationconfig); proto JSON accepts the lowerCamel and the original snake_case names.
_REQUEST_FIELDS = {
    "model",
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
}
_GENERATION_FIELDS = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "_responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
}
_PART_DATA = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
# FunctionDeclaration.name: "Must be a-z, A-Z, 0-9, or contain underscores, colons, dots, and
# dashes, with a maximum length of 64" (https://ai.google.dev/api/caching#FunctionDeclaration).
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
_TASK_TYPES = {
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
}
_EMBED_BATCH_LIMIT = 100


class _ApiError(Exception):
    def __init__(
        self, status: int, message: str, details: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, list(details)

    def body(self, status_name: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "status": status_name or _STATUS_NAMES.get(self.status, "UNKNOWN"),
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def _invalid(message: str) -> _ApiError:
    return _ApiError(400, message)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _normalized(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys in lowerCamel form (proto JSON takes both spellings)."""
    return {_camel(k) if not k.startswith("_") else k: v for k, v in obj.items()}


def _check_fields(obj: Mapping[str, Any], allowed: set[str]) -> None:
    for key in obj:
        if key not in allowed:
            # The proto JSON parser's message for unknown fields, as Google APIs answer it.
            raise _invalid(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class _Generation:
    """A validated generateContent request, in the Responder's OpenAI-like vocabulary."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any] | None
    response_format: dict[str, Any] | None
    stop: list[str] | None
    max_tokens: int | None
    thinking: bool
    include_thoughts: bool
    signatures: bool
    input_tokens: int
    media_tokens: dict[str, int]
    """Prompt tokens by modality other than text ("IMAGE", "VIDEO", "AUDIO")."""
    seen: list[Described]
    """The media of the last user turn, for the default reply to name."""


class GeminiEmulator(EmulatorBase):
    """The Gemini API on 127.0.0.1, scriptable, for offline tests.

    ``models`` adds to (or overrides) `GEMINI_MODELS`; ``max_input_tokens`` overrides every chat
    model's input limit. Requests take the next scripted item (`enqueue`); with an empty script
    ``responder`` answers. A `Fault.http` code is the google.rpc status name (e.g.
    "RESOURCE_EXHAUSTED"); empty means the name of its HTTP status. `PromptBlocked` scripts a
    blocked prompt; ``Reply(finish_reason=...)`` takes our names ("length", "content_filter") or
    Gemini's ("RECITATION", "MALFORMED_FUNCTION_CALL", ...).
    """

    def __init__(
        self,
        api_key: str = "test-gemini-key",
        *,
        models: Mapping[str, GeminiChatSpec | GeminiEmbeddingSpec] | None = None,
        max_input_tokens: int | None = None,
        responder: Responder | None = None,
    ) -> None:
        self.api_key = api_key
        self.models: dict[str, GeminiChatSpec | GeminiEmbeddingSpec] = {
            **GEMINI_MODELS,
            **(models or {}),
        }
        self.max_input_tokens = max_input_tokens
        self.responder = responder or Responder()
        self._issued_signatures: set[bytes] = set()
        super().__init__()
        self._serve(
            Starlette(
                routes=[Route("/{version}/models/{target:path}", self._handle, methods=["POST"])]
            )
        )

    @property
    def base_url(self) -> str:
        """What the SDK takes as ``HttpOptions.base_url`` (it appends ``/v1beta/...``)."""
        return self.url

    # -- dispatch ----------------------------------------------------------------------------

    async def _handle(self, request: Request) -> TimedResponse:
        record = await self._record(request, uuid.uuid4().hex[:20])
        version = request.path_params["version"]
        model, _, method = request.path_params["target"].rpartition(":")
        stream = method == "streamGenerateContent"
        sse = stream and request.query_params.get("alt") == "sse"
        try:
            if version not in _VERSIONS or not model:
                raise _ApiError(404, f"Requested entity was not found: {record.path}")
            self._authenticate(request)
            body = await self._body(request)
            if method in ("generateContent", "streamGenerateContent"):
                spec = self._spec(model, GeminiChatSpec, version, method)
                call = self._validate_generation(body, spec)
            elif method in ("embedContent", "batchEmbedContents"):
                spec_e = self._spec(model, GeminiEmbeddingSpec, version, method)
                return await self._embed(
                    record, body, model, spec_e, batch=method != "embedContent"
                )
            else:
                raise _ApiError(404, f"Method not found: {method}")  # unverified message
        except _ApiError as error:
            return self._error(error, record)
        return self._generate(record, call, model, stream=stream, sse=sse)

    def _authenticate(self, request: Request) -> None:
        """``x-goog-api-key`` header or ``key`` query parameter."""
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            # Google APIs' answer to a call without credentials (unverified for this API).
            raise _ApiError(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            # Quoted in continuedev/continue#8516 and google-gemini/gemini-cli#25198.
            raise _ApiError(
                400,
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise _invalid(
                "Invalid JSON payload received. Unexpected token."
            ) from None  # unverified
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")  # unverified
        return body

    def _spec(self, model: str, kind: type, version: str, method: str) -> Any:
        name = model.removeprefix("models/")
        spec = self.models.get(name)
        if not isinstance(spec, kind):
            # Quoted in google-gemini/deprecated-generative-ai-python#746 and many others.
            raise _ApiError(
                404,
                f"models/{name} is not found for API version {version}, or is not supported for "
                f"{method}. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        return spec

    def _error(
        self, error: _ApiError, record: RecordedRequest, status_name: str | None = None
    ) -> TimedResponse:
        body = _dumps(error.body(status_name))
        return TimedResponse(
            error.status,
            [("content-type", _JSON), ("content-length", str(len(body)))],
            [(0.0, body)],
            on_disconnect=record.mark_disconnected,
        )

    # -- generateContent validation ----------------------------------------------------------

    def _validate_generation(self, raw: dict[str, Any], spec: GeminiChatSpec) -> _Generation:
        body = _normalized(raw)
        _check_fields(body, _REQUEST_FIELDS)
        config = _normalized(body.get("generationConfig") or {})
        _check_fields(config, _GENERATION_FIELDS)
        contents = body.get("contents")
        if not contents:
            # unverified message; the request field is required (API reference)
            raise _invalid("* GenerateContentRequest.contents: contents is not specified\n")
        if not isinstance(contents, list):
            raise _invalid(
                'Invalid JSON payload received. Unknown name "contents": '
                "Proto field is not repeating, cannot start list."
            )
        system = body.get("systemInstruction")
        messages = _system_messages(system) + _conversation(contents, spec, self._issued_signatures)
        tools, names = _tools(body.get("tools"))
        tool_choice = _tool_config(body.get("toolConfig"), names)
        _check_generation_config(config, spec)
        thinking, include_thoughts = _thinking(config.get("thinkingConfig"), spec)
        response_format = _response_format(config)

        seen, media_tokens = _media(contents, spec)
        input_tokens = sum(count_tokens(m.get("content") or "") for m in messages)
        input_tokens += sum(count_tokens(json.dumps(t, ensure_ascii=False)) for t in tools)
        input_tokens += sum(media_tokens.values())
        limit = self.max_input_tokens or spec.max_input_tokens
        if input_tokens > limit:
            # unverified wording; Gemini answers INVALID_ARGUMENT for over-long prompts
            raise _invalid(
                f"The input token count ({input_tokens}) exceeds the maximum number of tokens "
                f"allowed ({limit})."
            )
        stop = config.get("stopSequences")
        return _Generation(
            messages=messages,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            stop=stop,
            max_tokens=config.get("maxOutputTokens"),
            thinking=thinking,
            include_thoughts=include_thoughts,
            signatures=spec.signatures and thinking,
            input_tokens=max(input_tokens, 1),
            media_tokens=media_tokens,
            seen=seen,
        )

    # -- generateContent response ------------------------------------------------------------

    def _generate(
        self, record: RecordedRequest, call: _Generation, model: str, *, stream: bool, sse: bool
    ) -> TimedResponse:
        item, hang = self._take()
        if isinstance(item, Fault) and (item.kind == "http" or not stream):
            error = _ApiError(item.status, item.message)
            return self._error(error, record, item.code or None)
        if isinstance(item, PromptBlocked):
            return self._blocked(item, call, model, record, stream=stream, sse=sse)
        reply = item if isinstance(item, Reply) else seeing(self._default_reply(call), call.seen)
        render = _Renderer(reply, call, model.removeprefix("models/"), record.request_id)
        self._issued_signatures.update(render.signatures)
        if not stream:
            body = _dumps(render.whole())
            pieces = [(reply.first_chunk_delay, body)]
            abort_after = None
            if reply.drop_after_chunks is not None:
                pieces = [
                    (reply.first_chunk_delay, body[: len(body) // 2]),
                    (0.0, body[len(body) // 2 :]),
                ]
                abort_after = 1
            return TimedResponse(
                200,
                [("content-type", _JSON), ("content-length", str(len(body)))],
                pieces,
                hang=hang,
                abort_after=abort_after,
                on_disconnect=record.mark_disconnected,
            )
        chunks: list[dict[str, Any]] = render.chunks()
        if isinstance(item, Fault):  # some chunks, then the error object in the stream
            chunks = chunks[: min(item.after_chunks, len(chunks) - 1)]
            chunks.append(_ApiError(item.status, item.message).body(item.code or None))
        if sse:
            frames = [b"data: " + _dumps(chunk) + b"\r\n\r\n" for chunk in chunks]
        else:  # without alt=sse the stream is one JSON array, written as it grows
            frames = [
                (b"[" if i == 0 else b",\r\n") + _dumps(chunk) for i, chunk in enumerate(chunks)
            ]
            frames.append(b"]")
        return TimedResponse.stream(
            [("content-type", _SSE if sse else _JSON)], frames, reply, record, hang=hang
        )

    @staticmethod
    def _blocked(
        item: PromptBlocked,
        call: _Generation,
        model: str,
        record: RecordedRequest,
        *,
        stream: bool,
        sse: bool,
    ) -> TimedResponse:
        """A blocked prompt is a 200 without candidates (GenerateContentResponse.promptFeedback)."""
        payload = _dumps(
            {
                "promptFeedback": {"blockReason": item.reason},
                "usageMetadata": {
                    "promptTokenCount": call.input_tokens,
                    "totalTokenCount": call.input_tokens,
                },
                "modelVersion": model.removeprefix("models/"),
                "responseId": record.request_id,
            }
        )
        if stream:
            payload = b"data: " + payload + b"\r\n\r\n" if sse else b"[" + payload + b"]"
        return TimedResponse(
            200,
            [("content-type", _SSE if stream and sse else _JSON)],
            [(0.0, payload)],
            on_disconnect=record.mark_disconnected,
        )

    def _default_reply(self, call: _Generation) -> Reply:
        return self.responder.reply(
            call.messages,
            tools=call.tools,
            tool_choice=call.tool_choice,
            response_format=call.response_format,
            stop=call.stop,
            max_tokens=call.max_tokens,
            enable_thinking=call.thinking,
            parallel_tool_calls=True,
        )

    # -- embeddings --------------------------------------------------------------------------

    async def _embed(
        self,
        record: RecordedRequest,
        raw: dict[str, Any],
        model: str,
        spec: GeminiEmbeddingSpec,
        *,
        batch: bool,
    ) -> TimedResponse:
        name = model.removeprefix("models/")
        body = _normalized(raw)
        if batch:
            _check_fields(body, {"requests"})
            requests = body.get("requests")
            if not isinstance(requests, list) or not requests:
                raise _invalid(
                    "* BatchEmbedContentsRequest.requests: requests is not specified\n"
                )  # unverified
            if len(requests) > _EMBED_BATCH_LIMIT:
                # Quoted in langchain-ai/langchainjs#4491 and weaviate/weaviate#11277.
                raise _invalid(
                    "* BatchEmbedContentsRequest.requests: "
                    "at most 100 requests can be in one batch\n"
                )
            texts = [
                _embed_request(_normalized(r), name, spec, f"requests[{i}]", batch=True)
                for i, r in enumerate(requests)
            ]
        else:
            texts = [_embed_request(body, name, spec, "", batch=False)]
        item, hang = self._take()
        if isinstance(item, Fault):
            return self._error(_ApiError(item.status, item.message), record, item.code or None)
        vectors = [{"values": embed_text(text, dim)} for text, dim in texts]
        payload = {"embeddings": vectors} if batch else {"embedding": vectors[0]}
        data = _dumps(payload)
        return TimedResponse(
            200,
            [("content-type", _JSON), ("content-length", str(len(data)))],
            [(0.0, data)],
            hang=hang,
            on_disconnect=record.mark_disconnected,
        )


# -- request parsing helpers -------------------------------------------------------------------


def _system_messages(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    parts = system.get("parts") if isinstance(system, dict) else None
    if not parts or any(not isinstance(p, dict) or set(_normalized(p)) - {"text"} for p in parts):
        # unverified: the system instruction is documented as text only
        raise _invalid(
            "* GenerateContentRequest.system_instruction: only text parts are supported\n"
        )
    return [{"role": "system", "content": "".join(p.get("text", "") for p in parts)}]


# Values the thought-signatures guide documents for skipping validation of calls that have no
# signature of their own (history from other models or edited by the client).
_SKIP_SIGNATURES = {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}


def _bytes_field(value: str) -> bytes | None:
    """A proto JSON `bytes` value: base64 in either alphabet, padding optional; None if invalid."""
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _conversation(
    contents: list[Any], spec: GeminiChatSpec, issued: set[bytes]
) -> list[dict[str, Any]]:
    """Check turns and parts; translate to OpenAI-like messages for the Responder."""
    messages: list[dict[str, Any]] = []
    previous: str | None = None  # "user", "model", "call", "response"
    pending_calls = 0
    for index, raw in enumerate(contents):
        content = _normalized(raw) if isinstance(raw, dict) else {}
        role = content.get("role") or "user"
        if role not in ("user", "model"):
            # Quoted in public issues (e.g. "Please use a valid role: user, model.").
            raise _invalid("Please use a valid role: user, model.")
        parts = [_normalized(p) for p in content.get("parts") or [] if isinstance(p, dict)]
        if not parts:
            raise _invalid(
                f"* GenerateContentRequest.contents[{index}].parts: "
                "contents.parts must not be empty.\n"
            )
        for position, part in enumerate(parts):
            data = [key for key in _PART_DATA if key in part]
            if len(data) != 1:  # `data` is a oneof (API reference, Part); message unverified
                raise _invalid(
                    f"* GenerateContentRequest.contents[{index}].parts[{position}].data: "
                    "required oneof field 'data' must have one initialized field\n"
                )
            if "inlineData" in part:
                _check_inline(part["inlineData"], index, position)
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
        if calls:
            if role != "model":
                raise _invalid("Please use a valid role: user, model.")  # unverified for this case
            if previous not in ("user", "response"):
                # Quoted in google-gemini/gemini-cli#11814, continuedev/continue#11164.
                raise _invalid(
                    "Please ensure that function call turn comes immediately after a user turn "
                    "or after a function response turn."
                )
            first = next(p for p in parts if "functionCall" in p)
            signature = first.get("thoughtSignature")
            valid = issued | {_bytes_field(s) for s in _SKIP_SIGNATURES}
            if signature and _bytes_field(str(signature)) not in valid:
                # Signatures are opaque and checked by the server; message unverified.
                raise _invalid("Thought signature is not valid.")
            if spec.signatures and not signature:
                # Quoted in csells/dartantic#86 and vercel/ai#15550 (Gemini 3 models).
                raise _invalid(
                    "Function call is missing a thought_signature in functionCall parts. This is "
                    "required for tools to work correctly, and missing thought_signature may lead "
                    "to degraded model performance. Additional data, function call "
                    f"`default_api:{first['functionCall'].get('name', '')}` , position "
                    f"{index + 1}. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                )
        for response in responses:
            _check_function_response_parts(response, spec, index)
        if responses:
            if previous != "call":
                # Quoted in langchain-ai/langchain#27799.
                raise _invalid(
                    "Please ensure that function response turn comes immediately after a "
                    "function call turn."
                )
            if len(responses) != pending_calls:
                # unverified wording; the pairing rule is in the function-calling guide
                raise _invalid(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
        messages.extend(_as_messages(role, parts))
        previous = "call" if calls else "response" if responses else role
        pending_calls = len(calls)
    return messages


# "Function calling", multimodal function responses (Gemini 3 only): images png/jpeg/webp and
# documents pdf/text; FunctionResponsePart.fileData "is not supported in Gemini API" (API
# reference). Earlier models answer "Multimodal function responses are not supported for this
# model" (quoted in public client code; unverified).
_FUNCTION_RESPONSE_TYPES = {
    "image/png",
    "image/jpeg",
    "image/webp",
    "application/pdf",
    "text/plain",
}


def _check_function_response_parts(response: Any, spec: GeminiChatSpec, index: int) -> None:
    parts = _normalized(response).get("parts") if isinstance(response, dict) else None
    if not parts:
        return
    if not spec.multimodal_function_responses:
        raise _invalid("Multimodal function responses are not supported for this model.")
    for position, part in enumerate(parts):
        part = _normalized(part) if isinstance(part, dict) else {}
        if "inlineData" not in part:
            raise _invalid(  # unverified wording
                f"* GenerateContentRequest.contents[{index}].parts.function_response.parts"
                f"[{position}]: only inline_data is supported in Gemini API\n"
            )
        blob = _normalized(part["inlineData"])
        _check_inline(blob, index, position)
        if blob["mimeType"] not in _FUNCTION_RESPONSE_TYPES:
            raise _invalid(f"Unsupported MIME type: {blob['mimeType']}")  # unverified wording


def _check_inline(blob: Any, index: int, position: int) -> None:
    blob = _normalized(blob) if isinstance(blob, dict) else {}
    where = f"* GenerateContentRequest.contents[{index}].parts[{position}].inline_data"
    if not blob.get("mimeType"):
        raise _invalid(f"{where}.mime_type: mime_type is not specified\n")  # unverified
    data = str(blob.get("data", ""))
    if _bytes_field(data) is None:
        # proto JSON's message for a malformed bytes field (unverified for this API)
        raise _invalid(
            f"Invalid value at 'contents[{index}].parts[{position}].inline_data.data' "
            f'(TYPE_BYTES), Base64 decoding failed for "{data[:20]}"'
        )
    mime = blob["mimeType"]
    if mime.startswith("image/") and mime not in _IMAGE_TYPES:
        raise _invalid(f"Unsupported MIME type: {mime}")  # unverified wording


# Quoted in public issues (e.g. google-gemini/generative-ai-python, "Unable to process input
# image"); the same wording is used for a video that does not open (unverified).
_UNPROCESSABLE = (
    "Unable to process input {what}. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
_TILE, _TILE_TOKENS, _SMALL_SIDE = 768, 258, 384
_VIDEO_TOKENS_PER_SECOND, _AUDIO_TOKENS_PER_SECOND = 263, 32


def _media(contents: list[Any], spec: GeminiChatSpec) -> tuple[list[Described], dict[str, int]]:
    """Decode the media of every user turn: what the last one held, and tokens by modality."""
    seen: list[Described] = []
    tokens: dict[str, int] = {}
    for raw in contents:
        content = _normalized(raw)
        if (content.get("role") or "user") != "user":
            continue
        parts = [_normalized(p) for p in content.get("parts") or [] if isinstance(p, dict)]
        tool_media = [
            _normalized(media)
            for part in parts
            if "functionResponse" in part
            for media in _normalized(part["functionResponse"]).get("parts") or []
            if isinstance(media, dict)
        ]
        if tool_media or any("text" in p or "inlineData" in p or "fileData" in p for p in parts):
            seen = []
        for part in parts + tool_media:
            if "inlineData" in part:
                blob = _normalized(part["inlineData"])
                item, modality, count = _inline_media(blob, spec)
                if item is not None:
                    seen.append(item)
            elif "fileData" in part:
                mime = str(_normalized(part["fileData"]).get("mimeType") or "")
                modality, count = _file_media(mime, spec)
            else:
                continue
            if modality is not None:
                tokens[modality] = tokens.get(modality, 0) + count
    return seen, tokens


def _inline_media(
    blob: dict[str, Any], spec: GeminiChatSpec
) -> tuple[Described | None, str | None, int]:
    mime = str(blob["mimeType"])
    data = _bytes_field(str(blob.get("data", ""))) or b""
    if mime.startswith("image/"):
        try:
            image = open_image(data)
        except ImageProblem:
            raise _invalid(_UNPROCESSABLE.format(what="image")) from None
        return image, "IMAGE", _image_tokens(image.width, image.height, spec)
    if mime.startswith("video/"):
        container = sniff_video(data)
        if container is None:
            raise _invalid(_UNPROCESSABLE.format(what="video"))
        video = SeenVideo.of(container, data)
        seconds = max(1, math.ceil(video.duration or 0))
        return video, "VIDEO", seconds * _VIDEO_TOKENS_PER_SECOND
    if mime.startswith("audio/"):
        audio = SeenAudio.of(mime.removeprefix("audio/"), data)
        seconds = max(1, math.ceil(audio.duration or 0))
        return audio, "AUDIO", seconds * _AUDIO_TOKENS_PER_SECOND
    return None, None, 0


def _file_media(mime: str, spec: GeminiChatSpec) -> tuple[str | None, int]:
    if mime.startswith("image/"):
        return "IMAGE", spec.image_tokens or _TILE_TOKENS
    if mime.startswith("video/"):
        return "VIDEO", _VIDEO_TOKENS_PER_SECOND
    if mime.startswith("audio/"):
        return "AUDIO", _AUDIO_TOKENS_PER_SECOND
    return None, 0


def _image_tokens(width: int, height: int, spec: GeminiChatSpec) -> int:
    if spec.image_tokens is not None:
        return spec.image_tokens
    if width <= _SMALL_SIDE and height <= _SMALL_SIDE:
        return _TILE_TOKENS
    return math.ceil(width / _TILE) * math.ceil(height / _TILE) * _TILE_TOKENS


def _as_messages(role: str, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
    if role == "model":
        calls = [
            {
                "function": {
                    "name": p["functionCall"].get("name"),
                    "arguments": json.dumps(p["functionCall"].get("args", {})),
                }
            }
            for p in parts
            if "functionCall" in p
        ]
        return [{"role": "assistant", "content": text, "tool_calls": calls}]
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    messages: list[dict[str, Any]] = [
        {"role": "tool", "content": _result_text(r.get("response"))} for r in responses
    ]
    if text or not responses:
        messages.append({"role": "user", "content": text})
    return messages


def _result_text(response: Any) -> str:
    if isinstance(response, dict) and set(response) == {"result"}:
        value = response["result"]
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return json.dumps(response, ensure_ascii=False)


def _tools(raw: Any) -> tuple[list[dict[str, Any]], set[str]]:
    """Function declarations as OpenAI tools (for the Responder), and their names."""
    tools: list[dict[str, Any]] = []
    for tool in raw or []:
        for declaration in _normalized(tool).get("functionDeclarations") or []:
            declaration = _normalized(declaration)
            name = declaration.get("name", "")
            if not _FUNCTION_NAME.match(name):
                # rule from the FunctionDeclaration reference; message unverified
                raise _invalid(
                    f"* GenerateContentRequest.tools[0].function_declarations: [FIELD_INVALID] "
                    f"Invalid function name. Must start with a letter or an underscore. Must be "
                    f"a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a "
                    f"maximum length of 64. Got: {name!r}\n"
                )
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise _invalid(  # unverified: the reference documents them as alternatives
                    "parameters and parameters_json_schema cannot both be set"
                )
            schema = declaration.get("parametersJsonSchema") or _lower_types(
                declaration.get("parameters") or {}
            )
            tools.append(
                {
                    "type": "function",
                    "function": {
                        "name": name,
                        "description": declaration.get("description", ""),
                        "parameters": schema,
                    },
                }
            )
    return tools, {t["function"]["name"] for t in tools}


def _lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI-style Schema spells types in capitals ("OBJECT"); JSON Schema does not."""
    if isinstance(schema, dict):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def _tool_config(raw: Any, names: set[str]) -> str | dict[str, Any] | None:
    config = _normalized(_normalized(raw or {}).get("functionCallingConfig") or {})
    if not config:
        return None
    mode = config.get("mode", "AUTO")
    if mode not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
        raise _invalid(  # proto enum parsing; message form unverified
            f"Invalid value at 'tool_config.function_calling_config.mode' "
            "(type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), "
            f'"{mode}"'
        )
    allowed = config.get("allowedFunctionNames")
    if allowed:
        # "This should only be set when the Mode is ANY or VALIDATED" (FunctionCallingConfig).
        if mode not in ("ANY", "VALIDATED"):
            raise _invalid(
                "allowed_function_names is only allowed when function calling mode is ANY"
            )  # unverified wording
        unknown = [n for n in allowed if n not in names]
        if unknown:  # unverified: stricter than silently ignoring
            raise _invalid(f"allowed_function_names contains undeclared functions: {unknown}")
    if mode == "NONE":
        return "none"
    if mode in ("ANY", "VALIDATED"):
        return {"function": {"name": allowed[0]}} if allowed and len(allowed) == 1 else "required"
    return "auto"


# Ranges from the GenerationConfig reference; the messages are unverified.
_RANGES: tuple[tuple[str, Any, str], ...] = (
    ("temperature", lambda v: 0 <= v <= 2, "temperature must be in the range [0.0, 2.0]"),
    ("topP", lambda v: 0 <= v <= 1, "top_p must be in the range [0.0, 1.0]"),
    ("topK", lambda v: v >= 1, "top_k must be at least 1"),
    ("candidateCount", lambda v: 1 <= v <= 8, "candidate_count must be in the range [1, 8]"),
    ("presencePenalty", lambda v: -2 <= v < 2, "presence_penalty must be in the range [-2.0, 2.0)"),
    (
        "frequencyPenalty",
        lambda v: -2 <= v < 2,
        "frequency_penalty must be in the range [-2.0, 2.0)",
    ),
)


def _check_generation_config(config: Mapping[str, Any], spec: GeminiChatSpec) -> None:
    for name, ok, message in _RANGES:
        value = config.get(name)
        if value is not None and (
            not isinstance(value, (int, float)) or isinstance(value, bool) or not ok(value)
        ):
            raise _invalid(f"* GenerateContentRequest.generation_config.{message}\n")
    if config.get("candidateCount", 1) != 1:  # one candidate only in this emulator
        raise _invalid("Multiple candidates are not supported by this emulator")
    limit = config.get("maxOutputTokens")
    if limit is not None and (
        not isinstance(limit, int) or not 1 <= limit <= spec.max_output_tokens
    ):
        # unverified message; the limit is the model's documented output token limit
        raise _invalid(
            f"The specified max_output_tokens {limit} is invalid; it must be between 1 and "
            f"{spec.max_output_tokens}."
        )
    stop = config.get("stopSequences")
    if stop is not None and (not isinstance(stop, list) or len(stop) > 5):
        # "A set of up to 5 character sequences that will stop output generation" (reference)
        raise _invalid(
            "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences\n"
        )


def _thinking(raw: Any, spec: GeminiChatSpec) -> tuple[bool, bool]:
    """(whether the model thinks, whether thought summaries are returned)."""
    config = _normalized(raw or {})
    budget = config.get("thinkingBudget")
    level = config.get("thinkingLevel")
    include = bool(config.get("includeThoughts"))
    if spec.thinking == "none":
        if budget or include or level:
            raise _invalid("Thinking is not enabled for this model.")  # unverified wording
        return False, False
    if level is not None:
        if spec.thinking != "level":
            raise _invalid("Thinking level is not supported for this model.")  # unverified
        if budget is not None:  # thinking-level docs: use one or the other (unverified message)
            raise _invalid("You can only set either thinking budget or thinking level.")
        if str(level).upper() not in ("MINIMAL", "LOW", "MEDIUM", "HIGH"):
            raise _invalid(f"Invalid thinking level: {level}")
    if budget is not None and spec.thinking != "level":
        low, high = spec.budget_range
        if budget == 0 and spec.thinking == "always":
            # Quoted in public issues for gemini-2.5-pro.
            raise _invalid("Budget 0 is invalid. This model only works in thinking mode.")
        if budget not in (0, -1) and not low <= budget <= high:
            raise _invalid(  # unverified wording; ranges from the thinking guide
                f"The thinking budget {budget} is invalid. Please choose a value between "
                f"{low} and {high}."
            )
    if spec.thinking in ("always", "level"):
        return True, include
    thinks = budget != 0 if budget is not None else spec.thinks_by_default
    return thinks, include and thinks


def _response_format(config: Mapping[str, Any]) -> dict[str, Any] | None:
    mime = config.get("responseMimeType")
    schema = config.get("responseJsonSchema") or config.get("_responseJsonSchema")
    openapi = config.get("responseSchema")
    if schema is not None and openapi is not None:
        raise _invalid("response_schema and response_json_schema cannot both be set")  # unverified
    if (schema is not None or openapi is not None) and mime not in (
        "application/json",
        "text/x.enum",
    ):
        # The reference: "a compatible responseMimeType must also be set" (message unverified).
        raise _invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: "
            "response_mime_type must be application/json or text/x.enum when a schema is set\n"
        )
    if mime not in (None, "text/plain", "application/json", "text/x.enum"):
        raise _invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: "
            f"unsupported mime type {mime}\n"
        )
    if mime != "application/json":
        return None
    if schema is not None or openapi is not None:
        return {"type": "json_schema", "json_schema": {"schema": schema or _lower_types(openapi)}}
    return {"type": "json_object"}


def _embed_request(
    request: dict[str, Any], model: str, spec: GeminiEmbeddingSpec, where: str, *, batch: bool
) -> tuple[str, int]:
    _check_fields(request, {"model", "content", "taskType", "title", "outputDimensionality"})
    prefix = f"* {'BatchEmbedContentsRequest.' + where if batch else 'EmbedContentRequest'}"
    if batch and request.get("model", "").removeprefix("models/") != model:
        # unverified wording; every request names the model of the URL (reference)
        raise _invalid(f"{prefix}.model: model must match the model in the URL\n")
    parts = (request.get("content") or {}).get("parts") or []
    if not parts:
        raise _invalid(f"{prefix}.content.parts: contents.parts must not be empty.\n")  # unverified
    texts = [p.get("text") for p in parts if isinstance(p, dict)]
    if not all(isinstance(t, str) for t in texts):
        raise _invalid(f"{prefix}.content.parts: only text parts can be embedded\n")  # unverified
    task = request.get("taskType")
    if task is not None and task not in _TASK_TYPES:
        raise _invalid(f"Invalid value at 'task_type', \"{task}\"")  # proto enum; unverified
    if request.get("title") and task != "RETRIEVAL_DOCUMENT":
        # "Only applicable when TaskType is RETRIEVAL_DOCUMENT" (reference); message unverified
        raise _invalid(f"{prefix}.title: title is only applicable for RETRIEVAL_DOCUMENT\n")
    dimension = request.get("outputDimensionality") or spec.dimension
    if not isinstance(dimension, int) or not 1 <= dimension <= spec.dimension:
        raise _invalid(  # unverified wording; the largest size is the model's
            f"{prefix}.output_dimensionality: must be between 1 and {spec.dimension}\n"
        )
    return "".join(t for t in texts if isinstance(t, str)), dimension


# -- response rendering ------------------------------------------------------------------------


class _Renderer:
    """A Reply as GenerateContentResponse objects (whole, or incremental stream chunks)."""

    def __init__(self, reply: Reply, call: _Generation, model: str, response_id: str) -> None:
        self.reply, self.call, self.model, self.response_id = reply, call, model, response_id
        self.finish = (
            _FINISH.get(reply.resolved_finish_reason) or reply.resolved_finish_reason.upper()
        )
        self.show_thoughts = call.include_thoughts and bool(reply.reasoning)
        self.signatures = [uuid.uuid4().bytes * 2] if call.thinking and reply.tool_calls else []

    def _function_parts(self) -> list[dict[str, Any]]:
        parts = []
        for position, tool_call in enumerate(self.reply.tool_calls):
            part: dict[str, Any] = {"functionCall": _function_call(tool_call)}
            if self.call.thinking and position == 0:  # thinking models sign their calls
                part["thoughtSignature"] = base64.b64encode(self.signatures[0]).decode()
            parts.append(part)
        return parts

    def _usage(self, text: str, reasoning: str, calls: int) -> dict[str, Any]:
        override = dict(self.reply.usage or {})
        prompt = override.get("input_tokens", self.call.input_tokens)
        candidates = override.get(
            "output_tokens",
            count_tokens(text) + tool_call_tokens(self.reply.tool_calls[:calls]),
        )
        thoughts = override.get(
            "reasoning_tokens", count_tokens(reasoning) if self.call.thinking else 0
        )
        media = self.call.media_tokens
        text_tokens = max(prompt - sum(media.values()), 0)
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text_tokens}]
            + [{"modality": kind, "tokenCount": count} for kind, count in media.items()],
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if override.get("cached_tokens"):
            usage["cachedContentTokenCount"] = override["cached_tokens"]
        return usage

    def _response(
        self, parts: list[dict[str, Any]], finish: bool, usage: dict[str, Any]
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = self.finish
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": self.response_id,
        }

    def whole(self) -> dict[str, Any]:
        reply = self.reply
        parts: list[dict[str, Any]] = []
        if self.show_thoughts:
            parts.append({"text": reply.reasoning, "thought": True})
        if reply.text or not reply.tool_calls:
            parts.append({"text": reply.text})
        parts += self._function_parts()
        usage = self._usage(reply.text, reply.reasoning, len(reply.tool_calls))
        return self._response(parts, True, usage)

    def chunks(self) -> list[dict[str, Any]]:
        """Thought pieces, text pieces (one token each), then each function call whole; the last
        chunk carries the finish reason. Every chunk repeats the running usage, as Gemini's do."""
        reply = self.reply
        pieces: list[dict[str, Any]] = []
        if self.show_thoughts:
            pieces += [{"text": t, "thought": True} for t in split_tokens(reply.reasoning)]
        pieces += [{"text": t} for t in split_tokens(reply.text)]
        pieces += self._function_parts()
        if not pieces:
            pieces = [{"text": ""}]
        chunks, text, calls = [], "", 0
        reasoning = reply.reasoning if self.call.thinking else ""
        for index, part in enumerate(pieces):
            if "functionCall" in part:
                calls += 1
            elif not part.get("thought"):
                text += part["text"]
            last = index == len(pieces) - 1
            chunks.append(self._response([part], last, self._usage(text, reasoning, calls)))
        return chunks


def _function_call(call: ToolCallReply) -> dict[str, Any]:
    arguments = call.arguments
    if isinstance(arguments, str):
        arguments = json.loads(arguments or "{}")
    return {"name": call.name, "args": dict(arguments)}
