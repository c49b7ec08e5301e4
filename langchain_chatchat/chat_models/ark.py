"""ChatArk: Volcengine Ark (Doubao models and endpoint ids)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.ark import ArkWorker
from langchain_chatchat.workers.sampling import thinking_switch


class ChatArk(ChatOpenAICompatible):
    """Doubao models by name or by inference endpoint id (`ep-...`); key from ARK_API_KEY.

    Example:
        ```python
        from langchain_chatchat import ChatArk

        ChatArk(model="doubao-1-5-pro-32k-250115").invoke("你好")
        ChatArk(model="ep-20250101000000-abcde").invoke("你好")
        ```
    """

    model: str = Field(default="doubao-1-5-pro-32k-250115", alias="model_name")
    thinking: bool | Literal["auto"] | None = None
    """Thinking models (doubao-seed-1.6): enable/disable, or "auto" to let the model decide;
    reasoning in `reasoning_content` (volcengine.com/docs/82379/1449737, thinking.type)."""
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    """How hard a thinking model thinks (doubao-seed-1.6+; "minimal" = no thinking)."""

    worker_class: ClassVar = ArkWorker
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | {
        "thinking",
        "reasoning_effort",  # volcengine.com/docs/82379/1494384 (the SDK's create() takes it)
    }

    def _extra_params(self) -> dict[str, Any]:
        return {**thinking_switch(self.thinking), "reasoning_effort": self.reasoning_effort}
