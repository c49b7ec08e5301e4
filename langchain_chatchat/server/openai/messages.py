"""OpenAI chat messages ⇄ LangChain messages, and LangChain output → OpenAI response parts.

The server speaks to every model through LangChain's interface, so these few functions are
the whole protocol translation; providers never see OpenAI's wire shapes from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata

from langchain_chatchat.workers.errors import BadRequestError


def to_langchain(messages: Sequence[dict[str, Any]]) -> list[BaseMessage]:
    """Validated OpenAI messages (see `schemas.MessageParam`) → LangChain messages."""
    return [_to_langchain(message, index) for index, message in enumerate(messages)]


def _to_langchain(message: dict[str, Any], index: int) -> BaseMessage:
    role = message["role"]
    name = message.get("name")
    if role == "user":
        return HumanMessage(content=_remote_content(message["content"], index), name=name)
    if role in ("system", "developer"):
        return SystemMessage(content=message["content"], name=name)
    if role == "tool":
        return ToolMessage(
            content=_remote_content(message["content"], index),
            tool_call_id=message["tool_call_id"],
        )
    calls = message.get("tool_calls") or []
    reasoning = message.get("reasoning_content")
    return AIMessage(
        content=message.get("content") or "",
        name=name,
        tool_calls=[_tool_call(call, index, position) for position, call in enumerate(calls)],
        additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
    )


def _remote_content(content: str | list[dict[str, Any]], index: int) -> str | list:
    if not isinstance(content, str):
        refuse_local_media(content, param=f"messages[{index}].content")
    return content


_MEDIA_TYPES = frozenset({"image_url", "image", "video", "video_url", "audio", "input_audio"})


def refuse_local_media(value: Any, param: str = "messages") -> None:
    """Refuse media blocks that name a path on this server: `file://` is for Python callers of a
    model with a `local_media_dir`, never for HTTP clients (send base64 data or an http(s) URL)."""
    if isinstance(value, dict):
        if value.get("type") in _MEDIA_TYPES and any(map(_is_file_url, _media_urls(value))):
            raise BadRequestError(
                "file:// media URLs are not accepted over HTTP; send the media inline as a "
                "base64 data URL or as an http(s) URL",
                param=param,
                code="invalid_image_url",
            )
        for item in value.values():
            refuse_local_media(item, param)
    elif isinstance(value, list):
        for item in value:
            refuse_local_media(item, param)


def _media_urls(block: dict[str, Any]) -> list[Any]:
    urls = [block.get("url"), block.get("image")]
    video = block.get("video")
    urls += video if isinstance(video, list) else [video]
    for key in ("image_url", "video_url"):
        inner = block.get(key)
        urls.append(inner.get("url") if isinstance(inner, dict) else inner)
    return urls


def _is_file_url(value: Any) -> bool:
    return isinstance(value, str) and value[:5].lower() == "file:"


def _tool_call(call: dict[str, Any], index: int, position: int) -> dict[str, Any]:
    function = call["function"]
    try:
        args = json.loads(function["arguments"] or "{}")
    except json.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise BadRequestError(
            "tool call arguments must be a JSON object",
            param=f"messages[{index}].tool_calls[{position}].function.arguments",
        )
    return {"type": "tool_call", "id": call["id"], "name": function["name"], "args": args}


def assistant_message(message: AIMessage) -> dict[str, Any]:
    """A whole reply as OpenAI's `choices[0].message`."""
    calls = [
        _openai_call(call["id"], call["name"], json.dumps(call["args"], ensure_ascii=False))
        for call in message.tool_calls
    ]
    # A model's malformed arguments are passed on as sent; the client decides what to do.
    calls += [
        _openai_call(call["id"], call["name"], call["args"]) for call in message.invalid_tool_calls
    ]
    text = message.text
    result: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        result["tool_calls"] = calls
    if reasoning := message.additional_kwargs.get("reasoning_content"):
        result["reasoning_content"] = reasoning
    return result


def _openai_call(call_id: str | None, name: str | None, arguments: str | None) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments or ""},
    }


def chunk_delta(chunk: AIMessageChunk) -> dict[str, Any]:
    """One streamed chunk as OpenAI's `choices[0].delta` (empty when it carries nothing new)."""
    delta: dict[str, Any] = {}
    if text := chunk.text:
        delta["content"] = text
    if reasoning := chunk.additional_kwargs.get("reasoning_content"):
        delta["reasoning_content"] = reasoning
    if chunk.tool_call_chunks:
        delta["tool_calls"] = [
            _call_piece(piece, position) for position, piece in enumerate(chunk.tool_call_chunks)
        ]
    return delta


def _call_piece(piece: ToolCallChunk, position: int) -> dict[str, Any]:
    """OpenAI sends id, type and name on a call's first piece only; later pieces add arguments."""
    index = piece.get("index")
    result: dict[str, Any] = {"index": position if index is None else index}
    function: dict[str, Any] = {"arguments": piece.get("args") or ""}
    if piece.get("id"):
        result["id"] = piece["id"]
        result["type"] = "function"
    if piece.get("name"):
        function["name"] = piece["name"]
    result["function"] = function
    return result


def finish_reason(message: AIMessage | AIMessageChunk) -> str | None:
    return message.response_metadata.get("finish_reason")


def usage(metadata: UsageMetadata | None) -> dict[str, Any]:
    """LangChain usage → OpenAI's `usage` (zeros when the model reported none)."""
    if metadata is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    result: dict[str, Any] = {
        "prompt_tokens": metadata["input_tokens"],
        "completion_tokens": metadata["output_tokens"],
        "total_tokens": metadata["total_tokens"],
    }
    if prompt_details := prompt_tokens_details(metadata.get("input_token_details") or {}):
        result["prompt_tokens_details"] = prompt_details
    if (reasoning := metadata.get("output_token_details", {}).get("reasoning")) is not None:
        result["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return result


# LangChain input_token_details key → OpenAI prompt_tokens_details key (OpenAI documents
# cached_tokens and audio_tokens; image_tokens and video_tokens follow the same naming).
_PROMPT_DETAILS = {
    "cache_read": "cached_tokens",
    "audio": "audio_tokens",
    "image": "image_tokens",
    "video": "video_tokens",
}


def prompt_tokens_details(details: Mapping[str, Any]) -> dict[str, int]:
    """The cache read (even when 0, as OpenAI reports it) and the non-zero media counts."""
    result = {}
    for key, name in _PROMPT_DETAILS.items():
        value = details.get(key)
        if value is not None and (value or key == "cache_read"):
            result[name] = value
    return result
