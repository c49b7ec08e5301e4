"""Qwen vision models on DashScope's multimodal endpoint (`MultiModalConversation`).

Qwen-VL, Qwen2.5/3-VL and QVQ answer on `POST {base}/services/aigc/multimodal-generation/
generation`, not on text generation, and take content as a list of one-key objects:
`{"text": ...}`, `{"image": url}`, `{"video": url | [frame urls]}` (Model Studio "Visual
understanding" guide and Qwen-VL API reference). Replies have the text-generation shape except
that `message.content` is such a list; `QwenWorker` reads both.

The request goes through the SDK's base API with `MultiModalConversation`'s task and function
(its async twin likewise), not through `MultiModalConversation.call` itself: that method
uploads every user-message element naming an existing local path — text included — to
DashScope's OSS, and fetches the upload ticket from the global endpoint rather than the
configured one. Here local files are read only from the operator's `local_media_dir` and sent
inline as base64 data URLs, which the endpoint documents as an input form.
"""

from __future__ import annotations

from typing import Any

from dashscope import AioMultiModalConversation, MultiModalConversation
from dashscope.client.base_api import BaseAioApi, BaseApi

from langchain_chatchat.workers.content import MIB, MediaRules, pattern

MULTIMODAL_MODELS = pattern(r"^(qwen-vl|qwen\d+(\.\d+)?-vl|qvq)")
"""Models served only by the multimodal endpoint: qwen-vl-max/plus/ocr, qwen2-vl-*,
qwen2.5-vl-*, qwen3-vl-*, qvq-max/plus (Model Studio model list)."""

MEDIA_RULES = MediaRules(
    # Qwen-VL "image limits": BMP, JPEG, PNG, TIFF, WEBP, HEIC; width and height over 10 px;
    # a base64 data URI at most 10 MB ("Exceeded limit on max bytes per data-uri item :
    # 10485760"), i.e. 7.5 MiB of image. Video: a URL, or a list of 4-512 frame images.
    models=MULTIMODAL_MODELS,
    formats=frozenset({"bmp", "jpeg", "png", "tiff", "webp", "heic"}),
    max_image_bytes=10 * MIB * 3 // 4,
    min_side=10,
    detail=False,
    video_models=MULTIMODAL_MODELS,
    video_frames=True,
    # "Input file limits", video files: MP4, AVI, MKV, MOV, FLV, WMV; inline, the same 10 MB
    # data-URI limit as images
    video_formats=frozenset({"mp4", "avi", "mkv", "mov", "flv", "wmv"}),
    max_video_bytes=10 * MIB * 3 // 4,
    example="qwen-vl-max",
)


def call(**payload: Any) -> Any:
    """`MultiModalConversation` over the SDK's transport (see the module docstring)."""
    return BaseApi.call(**_request(payload, MultiModalConversation))


async def acall(**payload: Any) -> Any:
    return await BaseAioApi.call(**_request(payload, AioMultiModalConversation))


def _request(payload: dict[str, Any], api: Any) -> dict[str, Any]:
    params = dict(payload)
    messages = params.pop("messages")
    return {
        **params,
        "input": {"messages": to_multimodal_messages(messages)},
        "task_group": "aigc",
        "task": api.task,
        "function": api.function,
    }


def to_multimodal_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DashScope text-generation messages (OpenAI-style parts) → the multimodal content form."""
    converted = []
    for message in messages:
        item = dict(message)
        if message["role"] != "tool":  # tool results stay strings, as in text generation
            item["content"] = _content(message.get("content"))
        converted.append(item)
    return converted


def _content(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    return [_part(part) for part in content]


def _part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part["type"]
    if kind == "text":
        return {"text": part["text"]}
    if kind == "image_url":
        return {"image": part["image_url"]["url"]}
    return {"video": part["video"]}  # checked by `prepare_media`: a URL or frame URLs


def uses_multimodal(model: str, override: bool | None) -> bool:
    """The multimodal endpoint for vision models, unless the operator says otherwise."""
    return bool(MULTIMODAL_MODELS.search(model)) if override is None else override
