"""LangChain messages ⇄ worker types. The only place that knows both vocabularies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call

from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.types import (
    ChatDelta,
    Role,
    Usage,
    WorkerMessage,
    WorkerResult,
    WorkerToolCall,
)

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "tool": "tool",
}


def to_worker_messages(messages: Sequence[BaseMessage]) -> list[WorkerMessage]:
    return [_to_worker_message(message) for message in messages]


def _to_worker_message(message: BaseMessage) -> WorkerMessage:
    name = message.name
    if isinstance(message, SystemMessage):
        return WorkerMessage(role="system", content=_text_or_parts(message.content), name=name)
    if isinstance(message, HumanMessage):
        return WorkerMessage(role="user", content=_text_or_parts(message.content), name=name)
    if isinstance(message, AIMessage):
        return WorkerMessage(
            role="assistant",
            content=_text(message.content),
            name=name,
            tool_calls=[
                WorkerToolCall(
                    id=call["id"] or f"call_{i}",
                    name=call["name"],
                    arguments=json.dumps(call["args"], ensure_ascii=False),
                )
                for i, call in enumerate(message.tool_calls)
            ],
            reasoning_content=message.additional_kwargs.get("reasoning_content"),
        )
    if isinstance(message, ToolMessage):
        content = message.content
        if isinstance(content, list) and _has_media(content):
            body: str | list[dict[str, Any]] = _text_or_parts(content)
        elif isinstance(content, str):
            body = content
        else:
            body = _text(content) or json.dumps(content, ensure_ascii=False)
        return WorkerMessage(
            role="tool", content=body, tool_call_id=message.tool_call_id, name=name
        )
    if isinstance(message, ChatMessage) and message.role in _ROLES:
        return WorkerMessage(
            role=_ROLES[message.role], content=_text_or_parts(message.content), name=name
        )
    raise BadRequestError(f"unsupported message type {message.type!r}", param="messages")


def _text(content: str | list) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else part.get("text", "")
        for part in content
        if isinstance(part, str) or part.get("type") == "text"
    )


def _text_or_parts(content: str | list) -> str | list[dict[str, Any]]:
    """Plain text stays a string; mixed content becomes OpenAI-style parts."""
    if isinstance(content, str):
        return content
    parts = [_to_openai_part(part) for part in content]
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _has_media(content: list) -> bool:
    return any(isinstance(part, dict) and part.get("type") not in _TEXT_TYPES for part in content)


_TEXT_TYPES = frozenset({"text", "text-plain"})


def _to_openai_part(part: str | dict[str, Any]) -> dict[str, Any]:
    """One LangChain content part (OpenAI, LangChain v1 standard, legacy v0 or Anthropic form) as
    the neutral OpenAI-style part workers take."""
    if isinstance(part, str):
        return {"type": "text", "text": part}
    kind = part.get("type")
    if kind in _TEXT_TYPES:
        return {"type": "text", "text": part.get("text", "")}
    if kind == "image_url":
        image_url = part.get("image_url")
        if isinstance(image_url, str):
            return {"type": "image_url", "image_url": {"url": image_url}}
        return {"type": "image_url", "image_url": dict(image_url or {})}
    if kind == "image":
        return {"type": "image_url", "image_url": _image_url(part)}
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": dict(part.get("input_audio") or {})}
    if kind == "audio":
        return {"type": "input_audio", "input_audio": _audio(part)}
    if kind in ("video", "video_url"):
        return {"type": "video", "video": _video(part)}
    if kind in ("file", "document"):
        raise BadRequestError(
            "file and document content blocks (PDF etc.) are not supported; send text or images",
            param="messages",
        )
    raise BadRequestError(f"unsupported content block type {kind!r}", param="messages")


def _source(part: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(url, base64 data, mime type) of a v1, legacy (`source_type`) or Anthropic media block."""
    source = part.get("source")
    if isinstance(source, dict):  # Anthropic: {"type": "base64"|"url", "media_type", "data"|"url"}
        return source.get("url"), source.get("data"), source.get("media_type")
    # v1 blocks name an uploaded file by `file_id` (their `id` identifies the block itself);
    # legacy blocks by `source_type: "id"`.
    if part.get("file_id") or part.get("source_type") == "id":
        raise BadRequestError(
            "content blocks that reference an uploaded file id are not supported; "
            "send the media as a URL or base64 data",
            param="messages",
        )
    data = part.get("base64") or (part.get("data") if part.get("source_type") == "base64" else None)
    return part.get("url"), data, part.get("mime_type")


def _image_url(part: dict[str, Any]) -> dict[str, Any]:
    url, data, mime = _source(part)
    if data:
        url = f"data:{mime or 'image/jpeg'};base64,{data}"
    if not url:
        raise BadRequestError("an image block needs a url or base64 data", param="messages")
    result: dict[str, Any] = {"url": url}
    detail = (part.get("extras") or {}).get("detail") or part.get("detail")
    if detail:
        result["detail"] = detail
    return result


def _audio(part: dict[str, Any]) -> dict[str, Any]:
    url, data, mime = _source(part)
    if not data:
        raise BadRequestError("an audio block needs base64 data", param="messages")
    audio_format = (
        (mime or "audio/wav").split("/")[-1].replace("mpeg", "mp3").replace("x-wav", "wav")
    )
    return {"data": data, "format": audio_format}


def _video(part: dict[str, Any]) -> str | list[str]:
    """A video URL, a data URL, or a list of frame image URLs."""
    if "video" in part:  # already neutral: {"type": "video", "video": url | [frames]}
        return part["video"]
    video_url = part.get("video_url")
    if isinstance(video_url, dict) and video_url.get("url"):
        return str(video_url["url"])
    if isinstance(video_url, str) and video_url:
        return video_url
    url, data, mime = _source(part)
    if data:
        return f"data:{mime or 'video/mp4'};base64,{data}"
    if not url:
        raise BadRequestError("a video block needs a url or base64 data", param="messages")
    return url


def usage_metadata(usage: Usage) -> UsageMetadata:
    metadata: UsageMetadata = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens or usage.input_tokens + usage.output_tokens,
    }
    details = input_token_details(usage)
    if details:
        metadata["input_token_details"] = details
    if usage.reasoning_tokens is not None:
        metadata["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    return metadata


def input_token_details(usage: Usage) -> InputTokenDetails:
    """Cache reads and per-modality input tokens. langchain-core's `InputTokenDetails` names
    `audio` and `cache_read` and admits provider keys: "image" and "video" are the others."""
    details: dict[str, int] = {}
    if usage.cached_tokens is not None:
        details["cache_read"] = usage.cached_tokens
    for key, value in (
        ("audio", usage.audio_tokens),
        ("image", usage.image_tokens),
        ("video", usage.video_tokens),
    ):
        if value:
            details[key] = value
    return cast(InputTokenDetails, details)


def _response_metadata(
    model: str | None,
    finish_reason: str | None,
    request_id: str | None,
    provider: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model_name": model,
        "finish_reason": finish_reason,
        "request_id": request_id,
        "model_provider": provider,
        **extra,
    }


def to_ai_message(result: WorkerResult, provider: str) -> AIMessage:
    tool_calls, invalid = [], []
    for call in result.tool_calls:
        raw = {"id": call.id, "function": {"name": call.name, "arguments": call.arguments}}
        try:
            tool_calls.append(parse_tool_call(raw, return_id=True))
        except Exception as error:  # malformed JSON from the model is data, not a crash
            invalid.append(make_invalid_tool_call(raw, str(error)))
    extra = {"reasoning_content": result.reasoning} if result.reasoning else {}
    return AIMessage(
        content=result.text,
        additional_kwargs=extra,
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(result.usage) if result.usage else None,
        response_metadata=_response_metadata(
            result.model, result.finish_reason, result.request_id, provider, result.metadata
        ),
        id=result.request_id,
    )


def to_ai_chunk(delta: ChatDelta, provider: str) -> AIMessageChunk:
    final = delta.finish_reason is not None
    return AIMessageChunk(
        content=delta.text,
        additional_kwargs={"reasoning_content": delta.reasoning} if delta.reasoning else {},
        tool_call_chunks=[
            tool_call_chunk(name=piece.name, args=piece.arguments, id=piece.id, index=piece.index)
            for piece in delta.tool_calls
        ],
        usage_metadata=usage_metadata(delta.usage) if delta.usage else None,
        response_metadata=_response_metadata(
            delta.model, delta.finish_reason, delta.request_id, provider, delta.metadata
        )
        if final
        else {},
        chunk_position="last" if final else None,
    )
