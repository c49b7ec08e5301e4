"""ChatDeepSeek: DeepSeek's chat and reasoning models."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.deepseek import DeepSeekWorker
from langchain_chatchat.workers.sampling import thinking_switch


class ChatDeepSeek(ChatOpenAICompatible):
    """DeepSeek models (key from DEEPSEEK_API_KEY).

    `deepseek-reasoner` streams its chain of thought in `additional_kwargs["reasoning_content"]`;
    it is sent back automatically on tool-calling turns, as thinking mode requires.

    Example:
        ```python
        from langchain_chatchat import ChatDeepSeek

        ChatDeepSeek(model="deepseek-reasoner").invoke("9.11 or 9.8: which is larger?")
        ```
    """

    model: str = Field(default="deepseek-chat", alias="model_name")
    thinking: bool | None = None
    """Thinking mode on deepseek-chat (`thinking: {"type": "enabled"}`); deepseek-reasoner
    always thinks. A call that forces a tool runs with thinking off."""
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    """How long the model thinks in thinking mode (unverified: newer models only)."""

    worker_class: ClassVar = DeepSeekWorker
    # api-docs.deepseek.com/guides/thinking_mode.
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | {
        "thinking",
        "reasoning_effort",
    }

    def _extra_params(self) -> dict[str, Any]:
        return {**thinking_switch(self.thinking), "reasoning_effort": self.reasoning_effort}
