"""DashScope's multimodal endpoint for the emulator: Qwen-VL, Qwen2.5/3-VL and QVQ.

`POST /api/v1/services/aigc/multimodal-generation/generation`, written from Model Studio's
"Visual understanding (Qwen-VL)" guide and the Qwen-VL API reference:

* content is a list of one-key objects — ``{"text"}``, ``{"image": url | data URL}``,
  ``{"video": url | [frame urls]}``; tool results may stay strings (unverified);
* images: BMP, JPEG, PNG, TIFF, WEBP, HEIC; width and height over 10 px; aspect ratio at most
  200:1; a base64 data URI at most 10 MB ("Exceeded limit on max bytes per data-uri item :
  10485760"); an image that does not open is "The image format is illegal and cannot be opened";
* a video given as frames has 4 to 512 images (unverified message); a video file (URL or
  data URL) is MP4, AVI, MKV, MOV, FLV or WMV ("Input file limits", video), sniffed from its
  bytes; a data URL keeps the 10 MB data-URI limit, a URL at most 1 GB (the stricter of the
  1 GB / 2 GB per-model limits);
* image tokens: one per 28x28 pixels, rounded up, at least 4 and at most the model's cap
  (1280 for qwen-vl-max/plus, 16384 for the Qwen2.5/3-VL family); frames of a video count as
  video tokens, the same way each;
* usage as the reference's multimodal example shows it (help.aliyun.com/zh/model-studio/
  get-temporary-file-url, response of qwen-vl-plus; github.com/dashscope/dashscope-sdk-java,
  MultiModalConversationUsage / MultiModalConversationTokensDetails): ``input_tokens``,
  ``output_tokens``, ``total_tokens``, top-level ``image_tokens`` / ``video_tokens``,
  ``input_tokens_details {text_tokens, image_tokens, video_tokens}`` and
  ``output_tokens_details {text_tokens}``, each media count only when that medium was sent;
* replies carry ``message.content`` as ``[{"text": ...}]``, streamed with the same SSE frames as
  text generation; parameters, thinking and tools follow text generation's rules.

The default reply names every image and video of the last user turn (format or container,
size, hash) so tests can check it arrived intact. Text models on this endpoint, and vision models on text generation,
get "url error, please check url!" (unverified).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request

from langchain_chatchat.testing.dashscope import (
    _ApiError,
    _failing_after,
    _frame,
    _invalid,
    _output,
    _stream_outputs,
    _usage,
)
from langchain_chatchat.testing.images import (
    Described,
    ImageProblem,
    ImageRules,
    SeenImage,
    seeing,
)
from langchain_chatchat.testing.script import Fault, Reply
from langchain_chatchat.testing.server import TimedResponse
from langchain_chatchat.testing.videos import SeenVideo, VideoRules

if TYPE_CHECKING:
    from langchain_chatchat.testing.dashscope import DashScopeEmulator

__all__ = ["MULTIMODAL_PATH", "VISION_MODELS", "VisionModelSpec", "multimodal_generation"]

MULTIMODAL_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
_DATA_URI_LIMIT = 10_485_760
_ILLEGAL_IMAGE = "The image format is illegal and cannot be opened."


@dataclass(frozen=True)
class VisionModelSpec:
    """A multimodal model: text-generation's fields, plus its image-token cap and tools."""

    max_input_tokens: int = 129_024
    max_output_tokens: int = 8_192
    thinking: Literal["none", "off", "on", "always"] = "none"
    result_format: Literal["text", "message"] = "message"
    incremental_output: bool = False
    stream_only: bool = False
    max_image_tokens: int = 16_384
    tools: bool = False


_QVQ = VisionModelSpec(thinking="always", incremental_output=True, stream_only=True)
_QWEN3_VL = VisionModelSpec(thinking="off", tools=True)
VISION_MODELS: Mapping[str, VisionModelSpec] = {
    "qwen-vl-max": VisionModelSpec(max_image_tokens=1280),
    "qwen-vl-max-latest": VisionModelSpec(max_image_tokens=1280),
    "qwen-vl-plus": VisionModelSpec(max_image_tokens=1280),
    "qwen2.5-vl-72b-instruct": VisionModelSpec(),
    "qwen2.5-vl-7b-instruct": VisionModelSpec(),
    "qwen3-vl-plus": _QWEN3_VL,
    "qwen3-vl-flash": _QWEN3_VL,
    "qwen3-vl-235b-a22b-thinking": VisionModelSpec(
        thinking="always", incremental_output=True, stream_only=True, tools=True
    ),
    "qvq-max": _QVQ,
    "qvq-plus": _QVQ,
}

_IMAGE_RULES = ImageRules(
    errors={
        kind: (400, "InvalidParameter", _ILLEGAL_IMAGE)
        for kind in ("decode", "format", "inline", "count", "model", "role", "url")
    }
    | {
        "size": (
            400,
            "InvalidParameter",
            "Exceeded limit on max bytes per data-uri item : {detail}",
        ),
        "pixels": (
            400,
            "InvalidParameter",
            "The image length and width do not meet the model restrictions. [{detail}]",
        ),
        "download": (
            400,
            "InvalidParameter.DataInspection",
            "Download the media resource timed out during the data inspection process.",
        ),
    },
    formats=frozenset({"bmp", "jpeg", "png", "tiff", "webp", "heic"}),
    max_bytes=_DATA_URI_LIMIT,
    min_side=10,
)


_ILLEGAL_VIDEO = "The video format is illegal and cannot be opened."  # unverified wording
_VIDEO_RULES = VideoRules(
    errors={
        kind: (400, "InvalidParameter", _ILLEGAL_VIDEO)
        for kind in ("decode", "format", "inline", "url", "model", "role")
    }
    | {
        "size": (400, "InvalidParameter", "The video file is too large: {detail}"),  # unverified
        "download": _IMAGE_RULES.errors["download"],
    },
    containers=frozenset({"mp4", "avi", "mkv", "mov", "flv", "wmv"}),
    max_bytes=1024 * 1024 * 1024,
)


@dataclass
class _MediaTokens:
    image: int = 0
    video: int = 0


async def multimodal_generation(emulator: DashScopeEmulator, request: Request) -> TimedResponse:
    """The endpoint's handler, mounted by `DashScopeEmulator`."""
    record = await emulator._record(request, str(uuid.uuid4()))
    stream = request.headers.get("x-dashscope-sse", "").lower() == "enable"
    try:
        body = emulator._check_request(request, record)
        spec = emulator._spec(body, VisionModelSpec)  # type: ignore[type-var]
        text_body, seen, tokens = _read_input(body, spec, emulator.remote_images)
        call = emulator._validate_generation(
            text_body,
            spec,  # type: ignore[arg-type]
            stream=stream,
            media_tokens=tokens.image + tokens.video,
        )
    except _ApiError as error:
        return emulator._error(error, record, stream=stream)

    item, hang = emulator._take()
    if isinstance(item, Fault) and (item.kind == "http" or not stream):
        return emulator._error(
            _ApiError(item.status, item.code, item.message), record, stream=stream
        )
    reply = item if isinstance(item, Reply) else seeing(emulator._default_reply(call), seen)
    usage = _with_media_tokens(_usage(reply, call.input_tokens), tokens)
    if not stream:
        scripted = item if isinstance(item, Reply) else None
        return emulator._json(
            _as_parts(_output(reply, True)), usage, record, hang=hang, reply=scripted
        )

    cumulative = not call.incremental if reply.cumulative is None else reply.cumulative
    outputs = _stream_outputs(reply, usage, call.input_tokens, True, cumulative)
    frames = [
        _frame(i, {"output": _as_parts(out), "usage": use, "request_id": record.request_id})
        for i, (out, use) in enumerate(outputs, start=1)
    ]
    if isinstance(item, Fault):
        frames = _failing_after(frames, item, record)
    return TimedResponse.stream(
        [("content-type", "text/event-stream;charset=UTF-8"), ("cache-control", "no-cache")],
        frames,
        reply,
        record,
        hang=hang,
    )


def _read_input(
    body: dict[str, Any], spec: VisionModelSpec, remote_media: Mapping[str, bytes]
) -> tuple[dict[str, Any], list[Described], _MediaTokens]:
    """Check the multimodal messages; return a text-generation view of the body (for the shared
    parameter rules), the media of the last user turn, and the media tokens."""
    messages = body["input"].get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _invalid('"messages" must be a list of messages')  # unverified wording
    params = body.get("parameters") or {}
    if isinstance(params, dict) and params.get("tools") and not spec.tools:
        raise _invalid(f"The model {body['model']} does not support tools.")  # unverified
    text_messages: list[dict[str, Any]] = []
    seen: list[Described] = []
    tokens = _MediaTokens()
    for message in messages:
        content = message.get("content")
        if message.get("role") == "user":
            seen = []
        if message.get("role") == "tool" and isinstance(content, str):
            text_messages.append(message)
            continue
        if content is None and message.get("tool_calls"):
            text_messages.append(message)
            continue
        if not isinstance(content, list):
            raise _invalid("The content field must be a list of content items.")  # unverified
        texts = []
        for item in content:
            if not isinstance(item, dict) or len(item) != 1:
                raise _invalid("Each content item must have exactly one of text, image, video.")
            ((kind, value),) = item.items()
            if kind == "text" and isinstance(value, str):
                texts.append(value)
            elif kind == "image" and message.get("role") == "user":
                image = _image(value, remote_media)
                seen.append(image)
                tokens.image += _image_tokens(image, spec.max_image_tokens)
            elif kind == "video" and message.get("role") == "user":
                media, video_tokens = _video(value, spec, remote_media)
                seen += media
                tokens.video += video_tokens
            else:
                raise _invalid(
                    f"Unsupported content item {kind!r} in a {message.get('role')} message."
                )
        text_messages.append({**message, "content": "".join(texts)})
    view = {**body, "input": {"messages": text_messages}}
    return view, seen, tokens


def _video(
    value: Any, spec: VisionModelSpec, remote_media: Mapping[str, bytes]
) -> tuple[list[Described], int]:
    """A video file or a list of frames: what was seen, and its video tokens."""
    if isinstance(value, str):
        if not value.startswith(("http://", "https://", "data:video/")):
            raise _invalid(_ILLEGAL_VIDEO)
        video = _checked(_VIDEO_RULES, value, remote_media)
        return [video], _video_file_tokens(video)
    if not isinstance(value, list) or not 4 <= len(value) <= 512:
        raise _invalid("The number of video frames must be between 4 and 512.")  # unverified
    frames = [_image(frame, remote_media) for frame in value]
    return [*frames], sum(_image_tokens(f, spec.max_image_tokens) for f in frames)


def _video_file_tokens(video: SeenVideo) -> int:
    """unverified stand-in (the emulator decodes no frames): frames sampled at the default
    2 per second over the container's duration (at least 4), 4 tokens each, plus the vision
    start and end tokens."""
    frames = max(4, math.ceil((video.duration or 0) * 2))
    return frames * 4 + 2


def _checked(rules: Any, reference: str, remote_media: Mapping[str, bytes]) -> Any:
    """`rules.check(reference)`, its problems as DashScope's errors; a data URI over the
    request limit is refused first, with the image size error whatever the medium."""
    if reference.startswith("data:") and len(reference) > _DATA_URI_LIMIT:
        status, code, message = _IMAGE_RULES.errors["size"]
        raise _ApiError(status, code, message.format(detail=_DATA_URI_LIMIT))
    try:
        return rules.check(reference, remote_media)
    except ImageProblem as problem:
        status, code, message = rules.errors[problem.kind]
        raise _ApiError(status, code, message.format(detail=problem.detail)) from None


def _image(reference: Any, remote_images: Mapping[str, bytes]) -> SeenImage:
    if not isinstance(reference, str):
        raise _invalid(_ILLEGAL_IMAGE)
    seen = _checked(_IMAGE_RULES, reference, remote_images)
    if max(seen.width, seen.height) > 200 * min(seen.width, seen.height):
        raise _invalid(f"The aspect ratio of the image {seen.width}x{seen.height} exceeds 200.")
    return seen


def _image_tokens(image: SeenImage, cap: int) -> int:
    tiles = math.ceil(image.width / 28) * math.ceil(image.height / 28)
    return min(max(tiles, 4), cap) + 2  # plus the vision start and end tokens


def _with_media_tokens(usage: dict[str, Any], tokens: _MediaTokens) -> dict[str, Any]:
    if not (tokens.image or tokens.video):
        return usage
    details = {"text_tokens": usage["input_tokens"] - tokens.image - tokens.video}
    for key, count in (("image_tokens", tokens.image), ("video_tokens", tokens.video)):
        if count:
            usage[key] = details[key] = count
    usage["input_tokens_details"] = details
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens", 0)
    usage["output_tokens_details"] = {
        **usage.get("output_tokens_details", {}),
        "text_tokens": usage["output_tokens"] - reasoning,
    }
    return usage


def _as_parts(output: dict[str, Any]) -> dict[str, Any]:
    """The text-generation output with each message's content as ``[{"text": ...}]``."""
    choices = []
    for choice in output.get("choices") or []:
        message = dict(choice.get("message") or {})
        if isinstance(message.get("content"), str):
            message["content"] = [{"text": message["content"]}] if message["content"] else []
        choices.append({**choice, "message": message})
    return {**output, "choices": choices}
