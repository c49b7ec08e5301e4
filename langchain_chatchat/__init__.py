"""langchain-chatchat: many LLM providers and local models behind one LangChain interface."""

from langchain_chatchat.chat_models import (
    ChatArk,
    ChatAzureOpenAI,
    ChatBaichuan,
    ChatchatChatModel,
    ChatDeepSeek,
    ChatGemini,
    ChatMiniMax,
    ChatMoonshot,
    ChatOpenAICompatible,
    ChatQianfan,
    ChatQwen,
    ChatSpark,
    ChatZhipu,
)
from langchain_chatchat.embeddings import (
    ArkEmbeddings,
    AzureOpenAIEmbeddings,
    BaichuanEmbeddings,
    ChatchatEmbeddings,
    GeminiEmbeddings,
    MiniMaxEmbeddings,
    OpenAICompatibleEmbeddings,
    QianfanEmbeddings,
    QwenEmbeddings,
    SparkEmbeddings,
    ZhipuEmbeddings,
)
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ChatchatError,
    ContentFilterError,
    ContextLengthError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

# Local models need the optional `local` extra (torch, transformers): import them on first use.
_LAZY = {
    "ChatLocal": "langchain_chatchat.chat_models.local",
    "default_chat_model": "langchain_chatchat.chat_models.local",
    "LocalEmbeddings": "langchain_chatchat.embeddings.local",
    "default_embeddings": "langchain_chatchat.embeddings.local",
    "QueueFullError": "langchain_chatchat.workers.local.engine",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArkEmbeddings",
    "AuthenticationError",
    "AzureOpenAIEmbeddings",
    "BadRequestError",
    "BaichuanEmbeddings",
    "ChatArk",
    "ChatAzureOpenAI",
    "ChatBaichuan",
    "ChatDeepSeek",
    "ChatGemini",
    "ChatLocal",
    "ChatMiniMax",
    "ChatMoonshot",
    "ChatOpenAICompatible",
    "ChatQianfan",
    "ChatQwen",
    "ChatSpark",
    "ChatZhipu",
    "ChatchatChatModel",
    "ChatchatEmbeddings",
    "ChatchatError",
    "ContentFilterError",
    "ContextLengthError",
    "GeminiEmbeddings",
    "LocalEmbeddings",
    "MiniMaxEmbeddings",
    "NotFoundError",
    "OpenAICompatibleEmbeddings",
    "PermissionDeniedError",
    "QianfanEmbeddings",
    "QueueFullError",
    "QwenEmbeddings",
    "RateLimitError",
    "SparkEmbeddings",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "ZhipuEmbeddings",
    "default_chat_model",
    "default_embeddings",
]
