"""BaichuanEmbeddings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.embeddings.openai_compatible import OpenAICompatibleEmbeddings
from langchain_chatchat.workers.baichuan import BaichuanEmbeddingWorker
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleEmbeddingWorker


class BaichuanEmbeddings(OpenAICompatibleEmbeddings):
    """Baichuan-Text-Embedding (16 texts per request); key from BAICHUAN_API_KEY."""

    model: str = Field(default="Baichuan-Text-Embedding", alias="model_name")

    worker_class: ClassVar[type[OpenAICompatibleEmbeddingWorker]] = BaichuanEmbeddingWorker
