"""LangChain messages ⇄ worker types. The only place that knows both vocabularies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
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
        text = (
            content
            if isinstance(content, str)
            else _text(content) or json.dumps(content, ensure_ascii=False)
        )
        return WorkerMessage(
            role="tool", content=text, tool_call_id=message.tool_call_id, name=name
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


def _to_openai_part(part: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("text", "")}
    if kind == "image_url":
        return part
    if kind == "image":  # LangChain v1 standard block
        if part.get("url"):
            return {"type": "image_url", "image_url": {"url": part["url"]}}
        data = part.get("base64") or part.get("data")
        if data:
            mime = part.get("mime_type", "image/jpeg")
            return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    return {"type": str(kind)}


def usage_metadata(usage: Usage) -> UsageMetadata:
    metadata: UsageMetadata = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens or usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_tokens is not None:
        metadata["input_token_details"] = {"cache_read": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        metadata["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    return metadata


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
