"""Local sentence embeddings: a transformers encoder, pooled and (by default) L2-normalised;
or a GGUF embedding model on llama.cpp (pooled as the GGUF says)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from langchain_chatchat.workers.base import EmbeddingWorker
from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.local import llama
from langchain_chatchat.workers.local.devices import Placement
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
        placement: Placement | None = None,
        engine: Literal["auto", "transformers", "llama_cpp"] = "auto",
        timeout: float | None = 60.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(timeout=timeout, max_retries=max_retries)
        self.model = model
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.placement = placement or Placement()
        self.engine = engine
        ModelSource.resolve(model)  # a missing model wheel fails now, at start-up
        self._forward_lock = threading.Lock()

    def load(self) -> None:
        """Load the encoder now (otherwise the first request does)."""
        if (gguf := self._gguf()) is not None:
            llama.load_gguf(gguf, embedding=True)
        else:
            self._encoder()

    def _gguf(self) -> Path | None:
        """The GGUF file to run on llama.cpp, when this model is one and that engine applies."""
        source = ModelSource.resolve(self.model)
        if source.gguf_file is None or self.engine == "transformers":
            if self.engine == "llama_cpp":
                raise BadRequestError(
                    f"engine 'llama_cpp' runs GGUF files; {self.model!r} is not one",
                    provider=self.provider,
                    param="engine",
                )
            return None
        if self.engine == "auto" and not llama.available():
            raise BadRequestError(
                f"{self.model!r} is a GGUF embedding model, which needs llama.cpp; "
                f"run `{llama.INSTALL}`",
                provider=self.provider,
            )
        return Path(source.location) / source.gguf_file

    def _encoder(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_encoder(ModelSource.resolve(self.model).location, self.placement)

    def _embed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        gguf = self._gguf()
        if gguf is not None:
            return self._embed_gguf(gguf, request)
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
        ).to(model.device)
        with self._forward_lock, torch.inference_mode():
            hidden = model(**batch).last_hidden_state
            vectors = self._pool(hidden, batch["attention_mask"]).float().cpu()
        tokens = int(batch["attention_mask"].sum())
        return EmbeddingResult(
            vectors=vectors.tolist(),
            usage=Usage(input_tokens=tokens, total_tokens=tokens),
            model=request.model,
        )

    def _embed_gguf(self, path: Path, request: EmbeddingRequest) -> EmbeddingResult:
        model = llama.load_gguf(path, embedding=True).llama
        dimensions = model.n_embd()
        if request.dimensions not in (None, dimensions):
            raise BadRequestError(
                f"local model {self.model!r} produces {dimensions}-dimensional vectors; "
                f"dimensions={request.dimensions} is not available",
                provider=self.provider,
                param="dimensions",
            )
        with self._forward_lock:
            vectors, tokens = model.embed(
                request.texts, normalize=self.normalize, truncate=True, return_count=True
            )
        return EmbeddingResult(
            vectors=vectors,
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
