"""SparkEmbeddings: iFlytek Spark's "llm embedding" service (signed HTTP, one text per request)."""

from __future__ import annotations

from typing import ClassVar

from langchain_core.utils import from_env, secret_from_env
from pydantic import Field, SecretStr

from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.workers.spark_embedding import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    SparkEmbeddingWorker,
)


class SparkEmbeddings(ChatchatEmbeddings):
    """iFlytek Spark text embeddings (2560 dimensions, up to 2K tokens per text).

    Documents are embedded with the service's ``para`` domain and queries with ``query``, as
    iFlytek asks for retrieval. Credentials are the console app's APPID / APIKey / APISecret
    (the embedding service is authorised separately from the Spark chat models), read from
    IFLYTEK_SPARK_APP_ID / IFLYTEK_SPARK_API_KEY / IFLYTEK_SPARK_API_SECRET (what iFlytek's
    ``sparkai`` SDK reads), or SPARK_APP_ID / SPARK_API_KEY / SPARK_API_SECRET (LangChain
    community's SparkLLMTextEmbeddings). Each text is one signed request: ``embed_documents``
    sends them in turn, ``aembed_documents`` concurrently.

    Example:
        ```python
        from langchain_chatchat.embeddings.spark import SparkEmbeddings

        emb = SparkEmbeddings()  # credentials from the environment
        emb.embed_documents(["讯飞星火", "知识库文本"])
        emb.embed_query("什么是星火?")
        ```
    """

    model: str = Field(default=DEFAULT_MODEL, alias="model_name")
    """A label only: the service has one model and takes no model parameter."""
    app_id: SecretStr | None = Field(
        alias="spark_app_id",
        default_factory=secret_from_env(["IFLYTEK_SPARK_APP_ID", "SPARK_APP_ID"], default=None),
    )
    api_key: SecretStr | None = Field(
        alias="spark_api_key",
        default_factory=secret_from_env(["IFLYTEK_SPARK_API_KEY", "SPARK_API_KEY"], default=None),
    )
    api_secret: SecretStr | None = Field(
        alias="spark_api_secret",
        default_factory=secret_from_env(
            ["IFLYTEK_SPARK_API_SECRET", "SPARK_API_SECRET"], default=None
        ),
    )
    base_url: str = Field(
        default_factory=from_env("IFLYTEK_SPARK_EMBEDDING_BASE_URL", default=DEFAULT_BASE_URL)
    )
    """The service URL, ``https://emb-cn-huabei-1.xf-yun.com/`` by default."""

    provider: ClassVar[str] = "spark"

    def _build_worker(self) -> SparkEmbeddingWorker:
        return SparkEmbeddingWorker(
            app_id=self.app_id.get_secret_value() if self.app_id else None,
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            api_secret=self.api_secret.get_secret_value() if self.api_secret else None,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )
