"""ArkEmbeddings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.embeddings.openai_compatible import OpenAICompatibleEmbeddings
from langchain_chatchat.workers.ark import ArkEmbeddingWorker
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleEmbeddingWorker


class ArkEmbeddings(OpenAICompatibleEmbeddings):
    """Doubao text embeddings on Volcengine Ark (model name or endpoint id); key from ARK_API_KEY."""

    model: str = Field(default="doubao-embedding-text-240715", alias="model_name")

    worker_class: ClassVar[type[OpenAICompatibleEmbeddingWorker]] = ArkEmbeddingWorker
