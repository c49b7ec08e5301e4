from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.embeddings.qwen import QwenEmbeddings

__all__ = ["ChatchatEmbeddings", "QwenEmbeddings"]
