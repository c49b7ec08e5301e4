"""ChatBaichuan: Baichuan's chat models."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.baichuan import BaichuanWorker
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker


class ChatBaichuan(ChatOpenAICompatible):
    """Baichuan4 / Baichuan3-Turbo chat (key from BAICHUAN_API_KEY).

    Example:
        ```python
        from langchain_chatchat import ChatBaichuan

        ChatBaichuan(model="Baichuan4-Turbo").invoke("你好")
        ```
    """

    model: str = Field(default="Baichuan4-Turbo", alias="model_name")

    worker_class: ClassVar[type[OpenAICompatibleWorker]] = BaichuanWorker
    # Provider extras are unverified: the OpenAI-standard options only (the stricter choice).
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options
