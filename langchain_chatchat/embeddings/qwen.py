"""QwenEmbeddings: DashScope text-embedding models."""

from __future__ import annotations

from typing import ClassVar

from langchain_core.utils import from_env, secret_from_env
from pydantic import Field, SecretStr

from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.workers.qwen import DEFAULT_BASE_URL, QwenEmbeddingWorker


class QwenEmbeddings(ChatchatEmbeddings):
    """DashScope text embeddings (text-embedding-v1 … v4) through the official SDK.

    Batches are cut to each model's documented limit (25 texts for v1/v2, 10 for v3/v4).
    """

    model: str = Field(default="text-embedding-v3", alias="model_name")
    api_key: SecretStr | None = Field(
        alias="dashscope_api_key",
        default_factory=secret_from_env("DASHSCOPE_API_KEY", default=None),
    )
    base_url: str = Field(
        default_factory=from_env("DASHSCOPE_HTTP_BASE_URL", default=DEFAULT_BASE_URL)
    )

    provider: ClassVar[str] = "qwen"

    def _build_worker(self) -> QwenEmbeddingWorker:
        return QwenEmbeddingWorker(
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )
