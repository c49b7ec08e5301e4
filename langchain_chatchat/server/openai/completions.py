"""POST /v1/completions: legacy prompt strings, split into chat turns by the worker layer.

The prompt goes through `workers.prompts.prompt_to_messages` (system prompt kept) and then the
same dispatcher, `ainvoke`/`astream`, as /v1/chat/completions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import add_usage
from starlette.responses import Response

from langchain_chatchat.server.openai import messages as convert
from langchain_chatchat.server.openai.schemas import CompletionRequest
from langchain_chatchat.server.openai.streaming import ChunkStream, dumps, sse_response
from langchain_chatchat.server.registry import ModelRegistry
from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.prompts import prompt_to_messages


def routes(registry: ModelRegistry) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/completions")
    async def create_completion(body: CompletionRequest) -> Response:
        served = registry.get(body.model, "chat")
        kwargs = body.invoke_kwargs()
        served.check_call_options(kwargs)
        model = served.runnable
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        completion_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            if len(prompts) > 1:
                raise BadRequestError("streaming accepts a single prompt", param="prompt")
            stream = await ChunkStream.start(model.astream(_messages(prompts[0]), **kwargs))
            return sse_response(_chunks(stream, body, completion_id, created))
        replies = await asyncio.gather(
            *(model.ainvoke(_messages(prompt), **kwargs) for prompt in prompts)
        )
        return Response(
            dumps(_completion(replies, body.model, completion_id, created)),
            media_type="application/json",
        )

    return router


def _messages(prompt: str) -> list[BaseMessage]:
    turns = prompt_to_messages(prompt)
    return convert.to_langchain([{"role": turn.role, "content": turn.content} for turn in turns])


def _envelope(
    completion_id: str, created: int, model: str, choices: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
    }


def _choice(index: int, text: str, reason: str | None) -> dict[str, Any]:
    return {"index": index, "text": text, "finish_reason": reason, "logprobs": None}


def _completion(
    replies: list[AIMessage], model: str, completion_id: str, created: int
) -> dict[str, Any]:
    choices = [
        _choice(i, reply.text, convert.finish_reason(reply) or "stop")
        for i, reply in enumerate(replies)
    ]
    total = None
    for reply in replies:
        total = add_usage(total, reply.usage_metadata)
    return {**_envelope(completion_id, created, model, choices), "usage": convert.usage(total)}


async def _chunks(
    stream: ChunkStream, body: CompletionRequest, completion_id: str, created: int
) -> AsyncIterator[dict[str, Any]]:
    async for chunk in stream:
        text, reason = chunk.text, convert.finish_reason(chunk)
        if text or reason:
            yield _envelope(completion_id, created, body.model, [_choice(0, text, reason)])
    if stream.finish_reason is None:
        yield _envelope(completion_id, created, body.model, [_choice(0, "", "stop")])
    if body.include_usage:
        yield {
            **_envelope(completion_id, created, body.model, []),
            "usage": convert.usage(stream.usage),
        }
