"""MiniMaxEmbeddings."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.utils import from_env
from pydantic import Field

from langchain_chatchat.embeddings.openai_compatible import OpenAICompatibleEmbeddings
from langchain_chatchat.workers.minimax import MiniMaxEmbeddingWorker
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleEmbeddingWorker


class MiniMaxEmbeddings(OpenAICompatibleEmbeddings):
    """MiniMax embo-01: documents embedded as `db`, queries as `query`; key from MINIMAX_API_KEY,
    GroupId from MINIMAX_GROUP_ID."""

    model: str = Field(default="embo-01", alias="model_name")
    group_id: str | None = Field(default_factory=from_env("MINIMAX_GROUP_ID", default=None))

    worker_class: ClassVar[type[OpenAICompatibleEmbeddingWorker]] = MiniMaxEmbeddingWorker

    def _worker_kwargs(self) -> dict[str, Any]:
        return {"group_id": self.group_id}
