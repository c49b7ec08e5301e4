"""GET /v1/models and /v1/models/{model}: what this server answers for, in OpenAI's shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from langchain_chatchat.server.openai.streaming import dumps
from langchain_chatchat.server.registry import ModelRegistry, ServedModel


def routes(registry: ModelRegistry) -> APIRouter:
    router = APIRouter()
    listing = dumps({"object": "list", "data": [_card(served) for served in registry]})

    @router.get("/v1/models")
    async def list_models() -> Response:
        return Response(listing, media_type="application/json")

    @router.get("/v1/models/{model}")
    async def retrieve_model(model: str) -> Response:
        return Response(dumps(_card(registry.get(model))), media_type="application/json")

    return router


def _card(served: ServedModel) -> dict[str, Any]:
    return {
        "id": served.name,
        "object": "model",
        "created": served.created,
        "owned_by": served.provider,
    }
