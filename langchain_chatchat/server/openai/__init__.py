"""The OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings."""

from __future__ import annotations

from fastapi import APIRouter

from langchain_chatchat.server.openai import chat, completions, embeddings, models
from langchain_chatchat.server.registry import ModelRegistry


def openai_router(registry: ModelRegistry) -> APIRouter:
    """Every OpenAI-compatible route, answering for the models in `registry`."""
    router = APIRouter(tags=["openai"])
    for module in (models, chat, completions, embeddings):
        router.include_router(module.routes(registry))
    return router


__all__ = ["openai_router"]
