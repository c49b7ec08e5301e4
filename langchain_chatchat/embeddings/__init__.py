from langchain_chatchat.embeddings.ark import ArkEmbeddings
from langchain_chatchat.embeddings.azure import AzureOpenAIEmbeddings
from langchain_chatchat.embeddings.baichuan import BaichuanEmbeddings
from langchain_chatchat.embeddings.base import ChatchatEmbeddings
from langchain_chatchat.embeddings.gemini import GeminiEmbeddings
from langchain_chatchat.embeddings.minimax import MiniMaxEmbeddings
from langchain_chatchat.embeddings.openai_compatible import OpenAICompatibleEmbeddings
from langchain_chatchat.embeddings.qianfan import QianfanEmbeddings
from langchain_chatchat.embeddings.qwen import QwenEmbeddings
from langchain_chatchat.embeddings.spark import SparkEmbeddings
from langchain_chatchat.embeddings.zhipu import ZhipuEmbeddings

__all__ = [
    "ArkEmbeddings",
    "AzureOpenAIEmbeddings",
    "BaichuanEmbeddings",
    "ChatchatEmbeddings",
    "GeminiEmbeddings",
    "MiniMaxEmbeddings",
    "OpenAICompatibleEmbeddings",
    "QianfanEmbeddings",
    "QwenEmbeddings",
    "SparkEmbeddings",
    "ZhipuEmbeddings",
]
