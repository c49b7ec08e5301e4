"""ChatMiniMax: MiniMax's chat models (chatcompletion_v2)."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.utils import from_env
from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.minimax import MiniMaxWorker
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker


class ChatMiniMax(ChatOpenAICompatible):
    """MiniMax-M1 / MiniMax-Text-01 (key from MINIMAX_API_KEY; `base_url`
    `https://api.minimax.io/v1` outside China).

    Example:
        ```python
        from langchain_chatchat import ChatMiniMax

        ChatMiniMax(model="MiniMax-Text-01").invoke("你好")
        ```
    """

    model: str = Field(default="MiniMax-Text-01", alias="model_name")
    group_id: str | None = Field(default_factory=from_env("MINIMAX_GROUP_ID", default=None))
    """The account's GroupId, sent as a query parameter where MiniMax requires it."""

    worker_class: ClassVar[type[OpenAICompatibleWorker]] = MiniMaxWorker
    # Provider extras are unverified: the OpenAI-standard options only (the stricter choice).
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options

    def _worker_kwargs(self) -> dict[str, Any]:
        return {"group_id": self.group_id}
