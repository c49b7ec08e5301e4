"""LangServe routes at /<name> for every served model: the very objects the OpenAI router calls."""

from __future__ import annotations

from fastapi import FastAPI
from langchain_core.runnables import Runnable, RunnableLambda
from langserve import add_routes

from langchain_chatchat.server.registry import ModelRegistry, ServedModel


def add_langserve_routes(app: FastAPI, registry: ModelRegistry) -> None:
    """invoke, batch, stream, stream_log, stream_events and playground for each model."""
    for served in registry:
        add_routes(app, as_runnable(served), path=f"/{served.name}")


def as_runnable(served: ServedModel) -> Runnable:
    """A chat model is a runnable already; an `Embeddings` becomes texts → vectors."""
    if served.kind == "chat":
        return served.model
    embeddings = served.model
    return RunnableLambda(
        embeddings.embed_documents, afunc=embeddings.aembed_documents, name=served.name
    ).with_types(input_type=list[str], output_type=list[list[float]])
