"""An emulator of OpenAI-style chat/embeddings APIs, one `Profile` per provider.

    from langchain_chatchat.testing import OpenAICompatibleEmulator, Reply, Fault

    with OpenAICompatibleEmulator("zhipu") as emu:          # or "deepseek", "azure", ...
        emu.enqueue(Reply(text="你好"), Fault.http(429, "1302", "并发过高"))
        ChatZhipu(api_key=emu.api_key, base_url=emu.base_url).invoke("hi")

The baseline is OpenAI's chat completions protocol (JSON and SSE, `stream_options`, tools,
`response_format`, errors); each profile in `profiles.py` adds the provider's path, auth scheme,
error body, request rules and stream quirks. Requests take the next scripted `Reply`/`Fault`
(FIFO); with an empty script the deterministic `Responder` answers. Every request is recorded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from langchain_chatchat.testing.images import (
    ImageProblem,
    ImageRules,
    SeenAudio,
    SeenImage,
    decode_base64,
    seeing,
)
from langchain_chatchat.testing.profiles import PROFILES, ApiError, Call, Profile, json_word_missing
from langchain_chatchat.testing.responder import (
    Responder,
    count_tokens,
    embed_text,
    message_text,
    new_tool_call_id,
    reply_token_counts,
    split_tokens,
)
from langchain_chatchat.testing.script import Fault, RecordedRequest, Reply
from langchain_chatchat.testing.server import EmulatorBase, TimedResponse
from langchain_chatchat.testing.videos import SeenVideo, VideoRules

__all__ = ["OpenAICompatibleEmulator", "PROFILES", "Profile"]

_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_DEFAULT_KEYS = {"zhipu": "test-id.test-secret", "spark": "test-key:test-secret"}


class OpenAICompatibleEmulator(EmulatorBase):
    """A provider's OpenAI-style API on 127.0.0.1, scriptable, for offline tests.

    ``profile`` is a `Profile` or the name of one in `PROFILES` (``dataclasses.replace`` makes
    variants, e.g. a server that never reports usage). ``base_url`` is what the client takes;
    for Azure, ``url`` is the resource endpoint and ``deployment`` the default deployment.
    """

    def __init__(
        self,
        profile: Profile | str = "openai_compatible",
        api_key: str | None = None,
        *,
        responder: Responder | None = None,
        deployment: str = "gpt-4o",
        **overrides: Any,
    ) -> None:
        super().__init__()
        profile = PROFILES[profile] if isinstance(profile, str) else profile
        self.profile = dataclasses.replace(profile, **overrides) if overrides else profile
        self.api_key = api_key or _DEFAULT_KEYS.get(self.profile.name, "test-key")
        self.deployment = deployment
        self.responder = responder or Responder()
        self.remote_images: dict[str, bytes] = {}
        """Bytes to serve for image URLs instead of downloading them (for URLs off loopback)."""
        routes = []
        for root in (self.profile.base_path, *self.profile.extra_base_paths):
            routes += [
                Route(root + self.profile.chat_path, self._chat, methods=["POST"]),
                Route(root + "/models", self._models, methods=["GET"]),
            ]
            if self.profile.embeddings_path:
                routes.append(
                    Route(root + self.profile.embeddings_path, self._embeddings, methods=["POST"])
                )
        self._serve(Starlette(routes=routes))

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The API root a client takes as ``base_url`` (``url`` is the server root: Azure's endpoint)."""
        return self.url + self.profile.base_path.format(deployment=self.deployment)

    # -- request handling ----------------------------------------------------------------------------
    def _call(self, request: Request, record: RecordedRequest) -> Call:
        profile = self.profile
        call = Call(
            body=record.body or {},
            headers=request.headers,
            query=request.query_params,
            api_key=self.api_key,
            deployment=request.path_params.get("deployment"),
        )
        if not profile.authenticate(call):
            raise ApiError(*profile.auth_error)
        if record.body is None:
            raise ApiError(
                400, profile.invalid_code, "We could not parse the JSON body of your request."
            )
        if not record.body.get("model") and call.deployment is None:
            raise ApiError(400, profile.invalid_code, "you must provide a model parameter")
        return call

    def _error(self, error: ApiError, record: RecordedRequest) -> TimedResponse:
        status, body = self.profile.error_body(
            error.status, error.code, error.message, record.request_id
        )
        headers = self.profile.rate_limit_headers if status == 429 else {}
        return _respond(status, _dumps(body), record, headers=headers)

    async def _models(self, request: Request) -> TimedResponse:
        record = await self._record(request, f"req-{uuid.uuid4().hex[:24]}")
        if not self.profile.authenticate(
            Call({}, request.headers, request.query_params, self.api_key)
        ):
            return self._error(ApiError(*self.profile.auth_error), record)
        data = [
            {"id": name, "object": "model", "owned_by": self.profile.name}
            for name in ("emulator-chat", "emulator-embedding")
        ]
        return _respond(200, _dumps({"object": "list", "data": data}), record)

    async def _chat(self, request: Request) -> TimedResponse:
        record = await self._record(request, f"req-{uuid.uuid4().hex[:24]}")
        try:
            call = self._call(request, record)
            self._check_chat(call)
            media = self._check_images(call)
        except ApiError as error:
            return self._error(error, record)
        body = call.body
        stream = bool(body.get("stream"))
        item, hang = self._take()
        if isinstance(item, Fault) and (item.kind == "http" or not stream):
            return self._error(ApiError(item.status, item.code, item.message), record)
        reply = item if isinstance(item, Reply) else seeing(self._default_reply(body), media)
        if reply.tool_calls and self.profile.tools_as_text(dict(body)):
            reply = _tool_calls_as_text(reply)
        audio_tokens = sum(_audio_tokens(m) for m in media if isinstance(m, SeenAudio))
        render = _Render(
            self.profile,
            body,
            reply,
            record.request_id,
            _prompt_tokens(body) + audio_tokens,
            audio_tokens,
        )
        if not stream or self.profile.ignore_stream:
            payload = _dumps(render.completion())
            pieces = [(reply.first_chunk_delay, payload)]
            abort = None
            if isinstance(item, Reply) and item.drop_after_chunks is not None:
                pieces, abort = (
                    [
                        (reply.first_chunk_delay, payload[: len(payload) // 2]),
                        (0.0, payload[len(payload) // 2 :]),
                    ],
                    1,
                )
            return TimedResponse(
                200,
                [("content-type", _JSON)],
                pieces,
                hang=hang,
                abort_after=abort,
                on_disconnect=record.mark_disconnected,
            )

        events = [_sse(chunk) for chunk in render.chunks()]
        if isinstance(item, Fault):  # some chunks, then the provider's in-stream error
            events = events[: item.after_chunks] + [_sse(self._stream_error(item, record))]
        elif self.profile.sse_done:
            events.append(b"data: [DONE]\n\n")
        return TimedResponse.stream(
            [("content-type", _SSE), ("cache-control", "no-cache")],
            events,
            reply,
            record,
            hang=hang,
        )

    def _stream_error(self, fault: Fault, record: RecordedRequest) -> dict[str, Any]:
        if self.profile.stream_error is not None:
            return self.profile.stream_error(fault.code, fault.message, record.request_id)
        return self.profile.error_body(fault.status, fault.code, fault.message, record.request_id)[
            1
        ]

    def _default_reply(self, body: Mapping[str, Any]) -> Reply:
        tool_choice = body.get("tool_choice")
        return self.responder.reply(
            body.get("messages") or [],
            tools=body.get("tools"),
            tool_choice=tool_choice,
            response_format=body.get("response_format"),
            stop=body.get("stop"),
            max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"),
            enable_thinking=self.profile.thinking(dict(body)),
            parallel_tool_calls=bool(body.get("parallel_tool_calls")),
        )

    def _check_chat(self, call: Call) -> None:
        """OpenAI's request rules, narrowed by the profile's."""
        profile, body = self.profile, call.body
        invalid = profile.invalid_code
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, invalid, "'messages' must be a non-empty array")
        called: set[str] = set()
        for position, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in _ROLES:
                raise ApiError(
                    400, invalid, f"Invalid value for 'messages[{position}].role': {role!r}"
                )
            if role == "assistant":
                called = {c.get("id") for c in message.get("tool_calls") or []}
            elif role == "tool" and message.get("tool_call_id") not in called:
                raise ApiError(
                    400,
                    invalid,
                    "messages with role 'tool' must be a response to a preceding message with 'tool_calls'",
                )
        if body.get("stream_options") is not None and not body.get("stream"):
            raise ApiError(
                400,
                invalid,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            )
        choice = body.get("tool_choice")
        if choice is not None:
            form = "named" if isinstance(choice, dict) else choice
            if form not in profile.tool_choices:
                raise ApiError(400, invalid, f"tool_choice {choice!r} is not supported")
            if not body.get("tools"):
                raise ApiError(
                    400, invalid, "tool_choice is only allowed when 'tools' are specified"
                )
        kind = (body.get("response_format") or {}).get("type")
        if kind not in (None, "text") and kind not in profile.response_formats:
            raise ApiError(400, invalid, f"response_format type {kind!r} is not supported")
        if kind == "json_object" and profile.json_word_required and json_word_missing(body):
            raise ApiError(
                400,
                invalid,
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            )
        stop = body.get("stop")
        if isinstance(stop, list) and profile.max_stop is not None and len(stop) > profile.max_stop:
            raise ApiError(400, invalid, f"'stop' accepts at most {profile.max_stop} sequences")
        profile.check(call)

    def _check_images(self, call: Call) -> list[SeenImage | SeenAudio | SeenVideo]:
        """Every image, audio and video part decoded and checked against the profile's rules;
        the media of the last user or tool turn are returned for the reply to describe."""
        rules, model = self.profile.images, str(call.body.get("model") or self.deployment)
        seen: list[SeenImage | SeenAudio | SeenVideo] = []
        count = 0
        for position, message in enumerate(call.body["messages"]):
            content = message.get("content")
            if message.get("role") in ("user", "tool"):
                seen = []
            if not isinstance(content, list):
                continue
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    continue
                if kind == "video_url" and self.profile.videos is not None:
                    seen.append(self._check_video(self.profile.videos, model, message, part))
                    continue
                if kind not in ("image_url", "input_audio") or rules is None:
                    raise ApiError(
                        400, self.profile.invalid_code, f"Invalid content part type: {kind!r}"
                    )
                try:
                    if kind == "input_audio":
                        seen.append(_check_audio(rules, model, message, part))
                        continue
                    count += 1
                    seen.append(self._check_image(rules, model, message, position, part, count))
                except ImageProblem as problem:
                    status, code, text = rules.errors[problem.kind]
                    raise ApiError(status, code, text.format(detail=problem.detail)) from None
        return seen

    def _check_image(
        self, rules: ImageRules, model: str, message: dict, position: int, part: dict, count: int
    ) -> SeenImage:
        role = message.get("role")
        if not rules.takes_images(model):
            raise ImageProblem("model", model)
        if role != "user" and not (role == "tool" and rules.tool_images):
            raise ImageProblem(
                "role",
                f"Invalid 'messages[{position}]'. Image URLs are only allowed for messages with "
                f"role 'user', but this message with role '{role}' contains an image URL.",
            )
        if rules.max_images is not None and count > rules.max_images:
            raise ImageProblem("count", f"at most {rules.max_images}")
        return rules.check(_part_url(part, "image_url"), self.remote_images)

    def _check_video(self, rules: VideoRules, model: str, message: dict, part: dict) -> SeenVideo:
        """A `video_url` part: a video model, a user turn, and a file the provider can open."""
        try:
            if not rules.takes_video(model):
                raise ImageProblem("model", model)
            if message.get("role") != "user":
                raise ImageProblem("role", f"video_url in a {message.get('role')} message")
            return rules.check(_part_url(part, "video_url"), self.remote_images)
        except ImageProblem as problem:
            status, code, text = rules.errors[problem.kind]
            raise ApiError(status, code, text.format(detail=problem.detail)) from None

    async def _embeddings(self, request: Request) -> TimedResponse:
        record = await self._record(request, f"req-{uuid.uuid4().hex[:24]}")
        profile = self.profile
        try:
            call = self._call(request, record)
            texts = self._embedding_texts(call)
        except ApiError as error:
            return self._error(error, record)
        item, hang = self._take()
        if isinstance(item, Fault):
            return self._error(ApiError(item.status, item.code, item.message), record)
        body = call.body
        dimension = int(body.get("dimensions") or profile.embedding_dimension)
        vectors = [embed_text(text, dimension) for text in texts]
        tokens = sum(count_tokens(text) for text in texts)
        if profile.embedding_style == "minimax":
            answer: dict[str, Any] = {
                "vectors": vectors,
                "total_tokens": tokens,
                **profile.envelope(record.request_id),
            }
        else:
            data = [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ]
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            answer = {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": usage,
                "id": record.request_id,
            }
        return _respond(200, _dumps(answer), record, hang=hang)

    def _embedding_texts(self, call: Call) -> list[str]:
        profile, body = self.profile, call.body
        if profile.embedding_style == "minimax":
            texts = body.get("texts")
            if body.get("type") not in ("db", "query"):
                raise ApiError(
                    400, profile.invalid_code, "invalid params, type should be db or query"
                )
            if not call.query.get("GroupId"):
                raise ApiError(
                    400, profile.invalid_code, "invalid params, GroupId is required"
                )  # unverified wording
        else:
            texts = body.get("input")
            texts = [texts] if isinstance(texts, str) else texts
        if (
            not isinstance(texts, list)
            or not texts
            or not all(isinstance(t, str) and t for t in texts)
        ):
            raise ApiError(
                400,
                profile.invalid_code,
                "input must be a non-empty string or array of non-empty strings",
            )
        limit = profile.batch_limit(str(body.get("model")))
        if len(texts) > limit:
            raise ApiError(
                400, profile.invalid_code, f"too many inputs: at most {limit} texts per request"
            )
        chars, tokens = profile.embedding_text_limits.get(str(body.get("model")), (None, None))
        chars_code, tokens_code, message = profile.embedding_too_long
        for text in texts:
            if chars is not None and len(text) > chars:
                raise ApiError(400, chars_code, f"{message} ({chars} characters)")
            if tokens is not None and count_tokens(text) > tokens:
                raise ApiError(400, tokens_code, f"{message} ({tokens} tokens)")
        per_request = profile.embedding_request_tokens.get(str(body.get("model")))
        if per_request is not None and sum(map(count_tokens, texts)) > per_request:
            raise ApiError(400, tokens_code, f"{message} ({per_request} tokens per request)")
        return texts


class _Render:
    """A `Reply` in the profile's JSON and SSE shapes."""

    def __init__(
        self,
        profile: Profile,
        body: Mapping[str, Any],
        reply: Reply,
        request_id: str,
        prompt_tokens: int,
        audio_tokens: int = 0,
    ) -> None:
        self.profile = profile
        self.body = body
        self.reply = reply
        self.request_id = request_id
        self.calls = [
            (c.id or new_tool_call_id(), c.name, c.arguments_json()) for c in reply.tool_calls
        ]
        self.usage = _usage(reply, prompt_tokens, profile.cache_usage, audio_tokens)
        self.head = {
            "id": request_id,
            "created": int(time.time()),
            "model": body.get("model") or "",
            **profile.envelope(request_id),
            **profile.search_results(body),
        }

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.reply.text}
        if self.reply.reasoning:
            message[self.profile.reasoning_key] = self.reply.reasoning
        if self.calls:
            message["tool_calls"] = [
                {
                    "index": i,
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": args},
                }
                for i, (cid, name, args) in enumerate(self.calls)
            ]
        return message

    def completion(self) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": self.message(),
            "finish_reason": self.reply.resolved_finish_reason,
        }
        return {**self.head, "object": "chat.completion", "choices": [choice], "usage": self.usage}

    def chunks(self) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        if self.profile.prompt_filter_chunk:  # Azure opens with the prompt's filter results
            results = {
                k: {"filtered": False, "severity": "safe"}
                for k in ("hate", "self_harm", "sexual", "violence")
            }
            chunks.append(
                {
                    "id": "",
                    "object": "",
                    "created": 0,
                    "model": "",
                    "choices": [],
                    "prompt_filter_results": [
                        {"prompt_index": 0, "content_filter_results": results}
                    ],
                }
            )
        deltas: list[dict[str, Any]] = [
            {self.profile.reasoning_key: t} for t in split_tokens(self.reply.reasoning)
        ]
        deltas += [{"content": t} for t in split_tokens(self.reply.text)]
        for index, (cid, name, args) in enumerate(self.calls):
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": cid,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
            deltas += [
                {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                for piece in split_tokens(args)
            ]
        if not self.profile.tool_call_index:  # pieces then say which call they belong to by id only
            for delta in deltas:
                for piece in delta.get("tool_calls", ()):
                    piece["id"] = self.calls[piece.pop("index")][0]
        for position, delta in enumerate(deltas or [{"content": ""}]):
            chunks.append(self._chunk({"role": "assistant", **delta} if position == 0 else delta))
        finish = self.reply.resolved_finish_reason
        mode = self.profile.usage_mode
        if mode == "snapshot":  # MiniMax: the whole message again, with the real usage
            choice = {"index": 0, "message": self.message(), "finish_reason": finish}
            chunks.append(
                {**self.head, "object": "chat.completion", "choices": [choice], "usage": self.usage}
            )
            return chunks
        last = self._chunk({}, finish)
        if mode == "final_chunk":
            last["usage"] = self.usage
        elif mode == "in_choice":
            last["choices"][0]["usage"] = self.usage
        chunks.append(last)
        if mode == "include_usage" and (self.body.get("stream_options") or {}).get("include_usage"):
            chunks.append(
                {**self.head, "object": "chat.completion.chunk", "choices": [], "usage": self.usage}
            )
        return chunks

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**self.head, "object": "chat.completion.chunk", "choices": [choice]}


def _check_audio(rules: ImageRules, model: str, message: dict, part: dict) -> SeenAudio:
    """OpenAI's `input_audio` part: audio models only, user turns, base64 wav or mp3 (chat
    completions reference; the refusal for other models mirrors the image one, unverified)."""
    if rules.audio_models is None or not re.search(rules.audio_models, model, re.IGNORECASE):
        raise ApiError(
            400,
            "invalid_value",
            "Invalid content type. input_audio is only supported by certain models.",
        )
    audio = part.get("input_audio") or {}
    if message.get("role") != "user" or audio.get("format") not in ("wav", "mp3"):
        raise ApiError(
            400, "invalid_value", "input_audio needs a user turn and format 'wav' or 'mp3'."
        )
    try:
        return SeenAudio.of(audio["format"], decode_base64(str(audio.get("data") or "")))
    except ImageProblem:
        raise ApiError(400, "invalid_value", "Invalid base64 data in 'input_audio'.") from None


def _tool_calls_as_text(reply: Reply) -> Reply:
    """The model's tool calls written as JSON text in content (unverified exact shape)."""
    calls = [{"name": c.name, "arguments": c.arguments_json()} for c in reply.tool_calls]
    text = json.dumps(calls if len(calls) > 1 else calls[0], ensure_ascii=False)
    return dataclasses.replace(reply, text=text, tool_calls=(), finish_reason="stop")


def _audio_tokens(audio: SeenAudio) -> int:
    """unverified stand-in for the provider's count: 10 per second of audio (1 per 100 ms), the
    duration read from a WAV header, else estimated at 16 kB per second."""
    seconds = audio.duration if audio.duration is not None else audio.size / 16_000
    return max(1, math.ceil(seconds * 10))


def _usage(
    reply: Reply, prompt_tokens: int, cache_usage: str = "details", audio_tokens: int = 0
) -> dict[str, Any]:
    """OpenAI's usage; audio input is `prompt_tokens_details.audio_tokens` (chat completions
    reference, CompletionUsage)."""
    override = reply.usage or {}
    prompt, completion, reasoning = reply_token_counts(reply, prompt_tokens)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reply.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    cached = override.get("cached_tokens")
    if cached is not None:
        if cache_usage == "deepseek":
            usage.update(prompt_cache_hit_tokens=cached, prompt_cache_miss_tokens=prompt - cached)
        elif cache_usage == "top_level":
            usage["cached_tokens"] = cached
        else:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if audio_tokens:
        usage.setdefault("prompt_tokens_details", {})["audio_tokens"] = audio_tokens
    return usage


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    messages: Sequence[Mapping[str, Any]] = body.get("messages") or []
    tokens = sum(count_tokens(message_text(m)) for m in messages)
    tokens += sum(
        count_tokens(json.dumps(m.get("tool_calls"), ensure_ascii=False))
        for m in messages
        if m.get("tool_calls")
    )
    if body.get("tools"):
        tokens += count_tokens(json.dumps(body["tools"], ensure_ascii=False))
    return max(tokens, 1)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


def _respond(
    status: int,
    body: bytes,
    record: RecordedRequest,
    *,
    hang: float = 0.0,
    headers: Mapping[str, str] | None = None,
) -> TimedResponse:
    head = [("content-type", _JSON), *(headers or {}).items()]
    return TimedResponse(
        status, head, [(0.0, body)], hang=hang, on_disconnect=record.mark_disconnected
    )


def _part_url(part: dict, kind: str) -> str:
    """The `url` of an `image_url` / `video_url` content part."""
    holder = part.get(kind)
    url = holder.get("url") if isinstance(holder, dict) else None
    if not isinstance(url, str) or not url:
        raise ImageProblem("decode", f"{kind}.url is required")
    return url
