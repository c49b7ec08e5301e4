"""QianfanEmbeddings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.embeddings.openai_compatible import OpenAICompatibleEmbeddings
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleEmbeddingWorker
from langchain_chatchat.workers.qianfan import QianfanEmbeddingWorker


class QianfanEmbeddings(OpenAICompatibleEmbeddings):
    """Qianfan embeddings (embedding-v1, bge-large-zh/en, tao-8k), cut to Qianfan's per-model batch limit (16; tao-8k: 1); key from QIANFAN_API_KEY."""

    model: str = Field(default="embedding-v1", alias="model_name")

    worker_class: ClassVar[type[OpenAICompatibleEmbeddingWorker]] = QianfanEmbeddingWorker
