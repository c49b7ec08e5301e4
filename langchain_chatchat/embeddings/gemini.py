"""GeminiEmbeddings: Gemini embedding models on the Gemini Developer API."""

from __future__ import annotations

from typing import ClassVar

from langchain_core.utils import from_env, secret_from_env
from pydantic import Field, SecretStr

from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.workers.gemini import DEFAULT_BASE_URL, GeminiEmbeddingWorker


class GeminiEmbeddings(ChatchatEmbeddings):
    """Gemini text embeddings (gemini-embedding-001, text-embedding-004) through `google-genai`.

    Documents are embedded with task type RETRIEVAL_DOCUMENT and queries with RETRIEVAL_QUERY;
    `dimensions` sets `outputDimensionality`. Batches hold at most 100 texts (the API's limit).
    """

    model: str = Field(default="gemini-embedding-001", alias="model_name")
    api_key: SecretStr | None = Field(
        alias="google_api_key",
        default_factory=secret_from_env(["GEMINI_API_KEY", "GOOGLE_API_KEY"], default=None),
    )
    base_url: str = Field(
        default_factory=from_env("GOOGLE_GEMINI_BASE_URL", default=DEFAULT_BASE_URL)
    )

    provider: ClassVar[str] = "gemini"

    def _build_worker(self) -> GeminiEmbeddingWorker:
        return GeminiEmbeddingWorker(
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )
