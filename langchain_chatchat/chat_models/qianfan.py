"""ChatQianfan: Baidu ERNIE models on Qianfan's v2 API."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker
from langchain_chatchat.workers.qianfan import QianfanWorker


class ChatQianfan(ChatOpenAICompatible):
    """ERNIE models (bearer API key `bce-v3/ALTAK-...` from QIANFAN_API_KEY).

    Back-to-back user (or assistant) turns are merged, since ERNIE needs alternating turns.

    Example:
        ```python
        from langchain_chatchat import ChatQianfan

        ChatQianfan(model="ernie-4.0-turbo-8k").invoke("你好")
        ```
    """

    model: str = Field(default="ernie-4.0-turbo-8k", alias="model_name")

    worker_class: ClassVar[type[OpenAICompatibleWorker]] = QianfanWorker
    # Provider extras are unverified: the OpenAI-standard options only (the stricter choice).
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options
