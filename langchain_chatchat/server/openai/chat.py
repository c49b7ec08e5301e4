"""POST /v1/chat/completions: the model's dispatcher `ainvoke`/`astream` (as LangServe calls it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from starlette.responses import Response

from langchain_chatchat.server.openai import messages as convert
from langchain_chatchat.server.openai.schemas import ChatCompletionRequest
from langchain_chatchat.server.openai.streaming import ChunkStream, dumps, sse_response
from langchain_chatchat.server.registry import ModelRegistry, ServedChat
from langchain_chatchat.workers.errors import BadRequestError


def routes(registry: ModelRegistry) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/chat/completions")
    async def create_chat_completion(body: ChatCompletionRequest) -> Response:
        served = registry.get(body.model, "chat")
        kwargs = body.invoke_kwargs()
        served.check_call_options(kwargs)
        model = with_tools(served, body)
        messages = convert.to_langchain(body.messages)  # type: ignore[arg-type]
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            stream = await ChunkStream.start(model.astream(messages, **kwargs))
            return sse_response(_chunks(stream, body, completion_id, created))
        reply = await model.ainvoke(messages, **kwargs)
        return Response(
            dumps(_completion(reply, body.model, completion_id, created)),
            media_type="application/json",
        )

    return router


def with_tools(
    served: ServedChat, body: ChatCompletionRequest
) -> Runnable[LanguageModelInput, Any]:
    """Bind the request's tools through each replica model's own `bind_tools`, which knows its
    provider."""
    if not body.tools:
        if body.tool_choice not in (None, "none"):
            raise BadRequestError(
                "tool_choice is only allowed when tools are specified", param="tool_choice"
            )
        return served.runnable
    options: dict[str, Any] = {}
    if body.tool_choice is not None:
        options["tool_choice"] = body.tool_choice
    if body.parallel_tool_calls is not None:
        options["parallel_tool_calls"] = body.parallel_tool_calls
    try:
        return served.bind_tools(body.tools, **options)
    except ValueError as error:  # e.g. tool_choice names a tool that is not in `tools`
        raise BadRequestError(str(error), param="tool_choice") from None


def _completion(reply: AIMessage, model: str, completion_id: str, created: int) -> dict[str, Any]:
    message = convert.assistant_message(reply)
    reason = convert.finish_reason(reply) or ("tool_calls" if message.get("tool_calls") else "stop")
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
        "usage": convert.usage(reply.usage_metadata),
    }


async def _chunks(
    stream: ChunkStream, body: ChatCompletionRequest, completion_id: str, created: int
) -> AsyncIterator[dict[str, Any]]:
    def envelope(delta: dict[str, Any] | None, reason: str | None = None) -> dict[str, Any]:
        """A chunk with one choice, or with none (the closing usage chunk) when `delta` is None."""
        choices = [] if delta is None else [_choice(delta, reason)]
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": choices,
        }

    first = True
    async for chunk in stream:
        delta = convert.chunk_delta(chunk)
        reason = convert.finish_reason(chunk)
        if first:
            delta = {"role": "assistant", "content": delta.pop("content", ""), **delta}
            first = False
        elif not delta and reason is None:
            continue
        yield envelope(delta, reason)
    if stream.finish_reason is None:
        yield envelope({}, stream.default_finish_reason())
    if body.include_usage:
        yield {**envelope(None), "usage": convert.usage(stream.usage)}


def _choice(delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
