"""ChatOpenAICompatible: any OpenAI-style chat server, and the base of the provider presets.

A provider preset (ChatDeepSeek, ChatZhipu, ...) declares its default model and names its
worker class; the key and base URL come from the environment variables the worker class names
(the ones the provider's own SDK reads). Connection fields, building the worker and secrets
live once in `connections.OpenAIConnection`, shared with the embeddings classes.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.connections import OpenAIConnection
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker


class ChatOpenAICompatible(OpenAIConnection, ChatchatChatModel):
    """Chat models behind any OpenAI-compatible server: vLLM, Ollama, Xinference, LocalAI,
    One-API, LM Studio, ... (and the base of every OpenAI-style provider preset).

    Tolerant of servers that omit usage, send `reasoning_content` / `reasoning`, ignore
    `stream`, or send tool calls without an index. Key and URL default to OPENAI_API_KEY /
    OPENAI_BASE_URL, as for the openai SDK.

    Example:
        ```python
        from langchain_chatchat import ChatOpenAICompatible

        llm = ChatOpenAICompatible(model="qwen2.5:7b", base_url="http://localhost:11434/v1")
        llm.invoke("hi")
        ```
    """

    model: str = Field(alias="model_name")

    provider: ClassVar[str] = "openai_compatible"
    # The extra sampling parameters OpenAI-style servers (vLLM, SGLang, LM Studio) document;
    # each provider preset declares its own set from the base's instead.
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | {
        "top_k",
        "min_p",
        "repetition_penalty",
        "logit_bias",
        "reasoning_effort",
    }
    worker_class: ClassVar[type[OpenAICompatibleWorker]] = OpenAICompatibleWorker

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return cls.__module__.split(".")
