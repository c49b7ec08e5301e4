from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.qwen import ChatQwen

__all__ = ["ChatQwen", "ChatchatChatModel"]
