"""Local transformers models as workers: FastChat's ModelWorker, rebuilt as a provider."""

from langchain_chatchat.workers.local.chat import LocalChatWorker, LocalModel
from langchain_chatchat.workers.local.embedding import LocalEmbeddingWorker
from langchain_chatchat.workers.local.engine import GenerationEngine, QueueFullError, SamplingParams
from langchain_chatchat.workers.local.loading import MINILM, SMOLLM2, ModelSource, cache_dir

__all__ = [
    "MINILM",
    "SMOLLM2",
    "GenerationEngine",
    "LocalChatWorker",
    "LocalEmbeddingWorker",
    "LocalModel",
    "ModelSource",
    "QueueFullError",
    "SamplingParams",
    "cache_dir",
]
