"""ZhipuEmbeddings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.embeddings.openai_compatible import OpenAICompatibleEmbeddings
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleEmbeddingWorker
from langchain_chatchat.workers.zhipu import ZhipuEmbeddingWorker


class ZhipuEmbeddings(OpenAICompatibleEmbeddings):
    """Zhipu embedding-3 / embedding-2 (64 / 16 texts per request; `dimensions` 256-2048 for embedding-3); key from ZHIPUAI_API_KEY."""

    model: str = Field(default="embedding-3", alias="model_name")

    worker_class: ClassVar[type[OpenAICompatibleEmbeddingWorker]] = ZhipuEmbeddingWorker
