"""POST /v1/embeddings through the model's dispatcher (as LangServe's /<name>/invoke)."""

from __future__ import annotations

import base64
import sys
from array import array

from fastapi import APIRouter
from starlette.responses import Response

from langchain_chatchat.server.openai.schemas import EmbeddingRequest
from langchain_chatchat.server.openai.streaming import dumps
from langchain_chatchat.server.registry import ModelRegistry


def routes(registry: ModelRegistry) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/embeddings")
    async def create_embeddings(body: EmbeddingRequest) -> Response:
        served = registry.get(body.model, "embeddings")
        vectors, tokens = await served.embed(body.texts(), body.dimensions)
        if body.encoding_format == "base64":
            vectors = [_base64(vector) for vector in vectors]
        payload = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(vectors)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Response(dumps(payload), media_type="application/json")

    return router


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 format: little-endian float32s."""
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
