"""ChatOpenAICompatible: any OpenAI-style chat server, and the base of the provider presets.

A provider preset (ChatDeepSeek, ChatZhipu, ...) declares its default model and names its
worker class; the key and base URL come from the environment variables the worker class names
(the ones the provider's own SDK reads). Connection fields, building the worker and secrets
live once in `OpenAIConnection`, shared with the embeddings classes.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import BaseModel, Field, SecretStr, model_validator

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleClient,
    OpenAICompatibleWorker,
)


class OpenAIConnection(BaseModel):
    """Key, base URL and headers of an OpenAI-style provider, and the worker built from them."""

    api_key: SecretStr | None = None
    """Defaults to the provider's usual environment variable (`worker_class.api_key_env`)."""
    base_url: str | None = None
    """The provider's OpenAI root, e.g. `http://localhost:8000/v1`; defaults to its env var / URL."""
    default_headers: dict[str, str] | None = None
    """Extra headers sent with every request (gateways, tenant ids, Qianfan's appid, ...)."""

    worker_class: ClassVar[type[OpenAICompatibleClient]]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "provider" not in cls.__dict__:  # presets take their name from their worker
            cls.provider = cls.worker_class.provider  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _credentials_from_env(cls, values: Any) -> Any:
        """`api_key` / `base_url` from the provider's environment variables when not given;
        `<provider>_api_key=` is accepted as an alias of `api_key`."""
        if not isinstance(values, dict):
            return values
        worker, values = cls.worker_class, dict(values)
        alias = f"{worker.provider}_api_key"
        if alias in values:
            values.setdefault("api_key", values.pop(alias))
        if values.get("api_key") is None and worker.api_key_env:
            values["api_key"] = os.environ.get(worker.api_key_env) or None
        if not values.get("base_url"):
            from_env = os.environ.get(worker.base_url_env) if worker.base_url_env else None
            values["base_url"] = from_env or worker.default_base_url
        return values

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": self.worker_class.api_key_env or "OPENAI_API_KEY"}

    def _worker_kwargs(self) -> dict[str, Any]:
        """Provider-specific worker arguments (Azure's deployment, MiniMax's group id, ...)."""
        return {}

    def _build_worker(self) -> Any:
        return self.worker_class(
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            base_url=self.base_url,
            default_headers=self.default_headers,
            timeout=self.timeout,  # type: ignore[attr-defined]
            max_retries=self.max_retries,  # type: ignore[attr-defined]
            **self._worker_kwargs(),
        )


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
    worker_class: ClassVar[type[OpenAICompatibleWorker]] = OpenAICompatibleWorker

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return cls.__module__.split(".")
