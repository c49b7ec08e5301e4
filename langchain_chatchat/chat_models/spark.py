"""ChatSpark: iFlytek Spark models through the Spark HTTP API."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker
from langchain_chatchat.workers.spark import SparkWorker


class ChatSpark(ChatOpenAICompatible):
    """Spark lite / generalv3 (Pro) / generalv3.5 (Max) / 4.0Ultra.

    `api_key` is the console's APIPassword (IFLYTEK_SPARK_API_PASSWORD), or "APIKey:APISecret".

    Example:
        ```python
        from langchain_chatchat import ChatSpark

        ChatSpark(model="generalv3.5").invoke("你好")
        ```
    """

    model: str = Field(default="generalv3.5", alias="model_name")

    worker_class: ClassVar[type[OpenAICompatibleWorker]] = SparkWorker
    # Spark HTTP API reference: top_k is its one sampling extra.
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | {"top_k"}
