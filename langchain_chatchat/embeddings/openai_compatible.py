"""OpenAICompatibleEmbeddings: any OpenAI-style /embeddings endpoint, and the providers' base."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.connections import OpenAIConnection
from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleEmbeddingWorker


class OpenAICompatibleEmbeddings(OpenAIConnection, ChatchatEmbeddings):
    """Embeddings from any OpenAI-compatible server (vLLM, Ollama, Xinference, LocalAI, ...),
    and the base of the provider embeddings; key and URL as for `ChatOpenAICompatible`.

    Example:
        ```python
        from langchain_chatchat import OpenAICompatibleEmbeddings

        emb = OpenAICompatibleEmbeddings(model="bge-m3", base_url="http://localhost:9997/v1")
        emb.embed_documents(["hello", "world"])
        ```
    """

    model: str = Field(alias="model_name")

    provider: ClassVar[str] = "openai_compatible"
    worker_class: ClassVar[type[OpenAICompatibleEmbeddingWorker]] = OpenAICompatibleEmbeddingWorker
