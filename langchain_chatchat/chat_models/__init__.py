from langchain_chatchat.chat_models.ark import ChatArk
from langchain_chatchat.chat_models.azure import ChatAzureOpenAI
from langchain_chatchat.chat_models.baichuan import ChatBaichuan
from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.deepseek import ChatDeepSeek
from langchain_chatchat.chat_models.gemini import ChatGemini
from langchain_chatchat.chat_models.minimax import ChatMiniMax
from langchain_chatchat.chat_models.moonshot import ChatMoonshot
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.chat_models.qianfan import ChatQianfan
from langchain_chatchat.chat_models.qwen import ChatQwen
from langchain_chatchat.chat_models.spark import ChatSpark
from langchain_chatchat.chat_models.zhipu import ChatZhipu

__all__ = [
    "ChatArk",
    "ChatAzureOpenAI",
    "ChatBaichuan",
    "ChatDeepSeek",
    "ChatGemini",
    "ChatMiniMax",
    "ChatMoonshot",
    "ChatOpenAICompatible",
    "ChatQianfan",
    "ChatQwen",
    "ChatSpark",
    "ChatZhipu",
    "ChatchatChatModel",
]
