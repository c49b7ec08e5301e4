"""POST /v1/embeddings over the configured `Embeddings`' own `aembed_documents`."""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

from fastapi import APIRouter
from langchain_core.embeddings import Embeddings
from starlette.responses import Response

from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.server.openai.schemas import EmbeddingRequest
from langchain_chatchat.server.openai.streaming import dumps
from langchain_chatchat.server.registry import ModelRegistry, ServedModel
from langchain_chatchat.workers.errors import BadRequestError


def routes(registry: ModelRegistry) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/embeddings")
    async def create_embeddings(body: EmbeddingRequest) -> Response:
        served = registry.get(body.model, "embeddings")
        vectors, tokens = await _embed(_with_dimensions(served, body.dimensions), body.texts())
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


async def _embed(model: Embeddings, texts: list[str]) -> tuple[list[Any], int]:
    """Vectors and prompt tokens; plain LangChain `Embeddings` cannot report tokens (0)."""
    if isinstance(model, ChatchatEmbeddings):
        result = await model.aembed_with_usage(texts)
        return result.vectors, result.usage.input_tokens if result.usage else 0
    return await model.aembed_documents(texts), 0


def _with_dimensions(served: ServedModel, dimensions: int | None) -> Embeddings:
    """The model itself, or a shallow copy (sharing its worker) with another output size."""
    model = served.model
    if dimensions is None or getattr(model, "dimensions", None) == dimensions:
        return model
    if "dimensions" not in getattr(type(model), "model_fields", {}):
        raise BadRequestError(
            f"The model '{served.name}' does not support the dimensions parameter",
            param="dimensions",
            code="unsupported_parameter",
        )
    return model.model_copy(update={"dimensions": dimensions})


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 format: little-endian float32s."""
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
