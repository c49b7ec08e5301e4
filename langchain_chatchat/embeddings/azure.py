"""AzureOpenAIEmbeddings."""

from __future__ import annotations

from typing import ClassVar

from langchain_chatchat.connections import AzureSettings
from langchain_chatchat.embeddings.openai_compatible import OpenAICompatibleEmbeddings
from langchain_chatchat.workers.azure import AzureOpenAIEmbeddingWorker
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleEmbeddingWorker


class AzureOpenAIEmbeddings(AzureSettings, OpenAICompatibleEmbeddings):
    """Embedding deployments on Azure OpenAI (key from AZURE_OPENAI_API_KEY, sent as `api-key`)."""

    worker_class: ClassVar[type[OpenAICompatibleEmbeddingWorker]] = AzureOpenAIEmbeddingWorker
