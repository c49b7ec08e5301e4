"""ChatZhipu: Zhipu AI's GLM models."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.sampling import thinking_switch
from langchain_chatchat.workers.zhipu import ZhipuWorker


class ChatZhipu(ChatOpenAICompatible):
    """GLM-4 family (key `{id}.{secret}` from ZHIPUAI_API_KEY, signed into a short-lived JWT).

    Example:
        ```python
        from langchain_chatchat import ChatZhipu

        ChatZhipu(model="glm-4-flash").invoke("你好")
        ChatZhipu(model="glm-4.5", thinking=True).stream("why is the sky blue?")
        ```
    """

    model: str = Field(default="glm-4-flash", alias="model_name")
    thinking: bool | None = None
    """GLM-4.5+: enable/disable deep thinking; reasoning arrives in `reasoning_content`."""
    clear_thinking: bool | None = None
    """GLM-4.7+: False keeps earlier turns' reasoning in context ("preserved thinking"; sent
    inside `thinking`, docs.bigmodel.cn 深度思考; unverified placement)."""
    tool_stream: bool | None = None
    """GLM-4.6+: stream tool-call arguments as they are generated (docs.bigmodel.cn 工具流式输出)."""
    use_jwt: bool = True
    """Sign the key into a JWT (Zhipu's documented scheme); False sends the key as it is."""

    worker_class: ClassVar = ZhipuWorker
    # open.bigmodel.cn chat-completions reference.
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | {
        "thinking",
        "tool_stream",  # docs.bigmodel.cn 工具流式输出
        "do_sample",
        "request_id",
        "user_id",
    }

    def _extra_params(self) -> dict[str, Any]:
        params = thinking_switch(self.thinking, clear_thinking=self.clear_thinking)
        if self.tool_stream is not None:
            params["tool_stream"] = self.tool_stream
        return params

    def _worker_kwargs(self) -> dict[str, Any]:
        return {"use_jwt": self.use_jwt}
