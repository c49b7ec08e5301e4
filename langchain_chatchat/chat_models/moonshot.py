"""ChatMoonshot: Moonshot AI's Kimi models."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.moonshot import MoonshotWorker
from langchain_chatchat.workers.sampling import thinking_switch


class ChatMoonshot(ChatOpenAICompatible):
    """Kimi / moonshot-v1 models (key from MOONSHOT_API_KEY; `base_url` for platform.moonshot.ai).

    Example:
        ```python
        from langchain_chatchat import ChatMoonshot

        ChatMoonshot(model="kimi-k2-0905-preview").invoke("你好")
        ```
    """

    model: str = Field(default="moonshot-v1-8k", alias="model_name")
    thinking: bool | None = None
    """kimi-k2.5+: thinking on (the default) or off; reasoning in `reasoning_content` and sent
    back on tool-call turns, as thinking models require."""

    worker_class: ClassVar = MoonshotWorker
    # The thinking switch of kimi-k2.5+ (platform.moonshot.cn, kimi-k2.5 quickstart); the
    # other provider extras are unverified: OpenAI-standard options only (the stricter choice).
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | {"thinking"}

    def _extra_params(self) -> dict[str, Any]:
        return thinking_switch(self.thinking)
