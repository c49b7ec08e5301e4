"""langchain-chatchat: many LLM providers and local models behind one LangChain interface."""

from langchain_chatchat.chat_models import ChatchatChatModel, ChatQwen
from langchain_chatchat.embeddings import ChatchatEmbeddings, QwenEmbeddings
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

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ChatQwen",
    "ChatchatChatModel",
    "ChatchatEmbeddings",
    "ChatchatError",
    "ContentFilterError",
    "ContextLengthError",
    "NotFoundError",
    "PermissionDeniedError",
    "QwenEmbeddings",
    "RateLimitError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]
