"""The generic LangChain `Embeddings` over any `EmbeddingWorker`."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Literal

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from langchain_chatchat.workers.base import EmbeddingWorker
from langchain_chatchat.workers.redact import register_model_secrets
from langchain_chatchat.workers.types import EmbeddingRequest, EmbeddingResult


class ChatchatEmbeddings(BaseModel, Embeddings):
    """Base of every langchain-chatchat embeddings class.

    Documents and queries are told apart (`text_type`) because retrieval-tuned providers embed
    them differently; batching to the provider's limit and order keeping are the worker's job.
    """

    model: str = Field(alias="model_name")
    dimensions: int | None = None
    batch_size: int | None = None
    """Texts per request; capped by the model's own limit."""
    timeout: float | None = Field(default=60.0, alias="request_timeout")
    max_retries: int = 2
    model_kwargs: dict[str, Any] = Field(default_factory=dict)

    provider: ClassVar[str] = "chatchat"
    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    _worker: EmbeddingWorker = PrivateAttr()

    @abstractmethod
    def _build_worker(self) -> EmbeddingWorker: ...

    @model_validator(mode="after")
    def _init_worker(self) -> ChatchatEmbeddings:
        register_model_secrets(self)  # masked in every error and log line from now on
        self._worker = self._build_worker()
        return self

    @property
    def worker(self) -> EmbeddingWorker:
        return self._worker

    def _request(
        self, texts: list[str], text_type: Literal["document", "query"]
    ) -> EmbeddingRequest:
        return EmbeddingRequest(
            model=self.model,
            texts=list(texts),
            dimensions=self.dimensions,
            text_type=text_type,
            extra=dict(self.model_kwargs),
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._worker.embed(self._request(texts, "document"), self.batch_size).vectors

    def embed_query(self, text: str) -> list[float]:
        return self._worker.embed(self._request([text], "query")).vectors[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return (
            await self._worker.aembed(self._request(texts, "document"), self.batch_size)
        ).vectors

    async def aembed_with_usage(self, texts: list[str]) -> EmbeddingResult:
        """Document vectors plus token usage, which the `Embeddings` interface cannot return."""
        return await self._worker.aembed(self._request(texts, "document"), self.batch_size)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self._worker.aembed(self._request([text], "query"))).vectors[0]
