"""Local models as workers: FastChat's ModelWorker, rebuilt as a provider, on two engines
(transformers, llama.cpp)."""

from langchain_chatchat.workers.local.cache import cache_dir
from langchain_chatchat.workers.local.chat import LocalChatWorker, LocalModel
from langchain_chatchat.workers.local.devices import DeviceError, Placement
from langchain_chatchat.workers.local.embedding import LocalEmbeddingWorker
from langchain_chatchat.workers.local.engine import GenerationEngine
from langchain_chatchat.workers.local.loading import MINILM, SMOLLM2, ModelSource
from langchain_chatchat.workers.local.sampling import SamplingParams
from langchain_chatchat.workers.local.scheduler import QueueFullError

__all__ = [
    "MINILM",
    "SMOLLM2",
    "DeviceError",
    "GenerationEngine",
    "LocalChatWorker",
    "LocalEmbeddingWorker",
    "LocalModel",
    "ModelSource",
    "Placement",
    "QueueFullError",
    "SamplingParams",
    "cache_dir",
]
