"""ChatMoonshot: Moonshot AI's Kimi models."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.moonshot import MoonshotWorker
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker


class ChatMoonshot(ChatOpenAICompatible):
    """Kimi / moonshot-v1 models (key from MOONSHOT_API_KEY; `base_url` for platform.moonshot.ai).

    Example:
        ```python
        from langchain_chatchat import ChatMoonshot

        ChatMoonshot(model="kimi-k2-0905-preview").invoke("你好")
        ```
    """

    model: str = Field(default="moonshot-v1-8k", alias="model_name")

    worker_class: ClassVar[type[OpenAICompatibleWorker]] = MoonshotWorker
    # Provider extras are unverified: the OpenAI-standard options only (the stricter choice).
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options
