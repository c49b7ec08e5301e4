"""ChatGemini: Google Gemini models on the Gemini Developer API."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.utils import from_env, secret_from_env
from pydantic import Field, SecretStr

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.workers.gemini import DEFAULT_BASE_URL, GeminiWorker


class ChatGemini(ChatchatChatModel):
    """Gemini chat models through the official `google-genai` SDK.

    Example:
        ```python
        from langchain_chatchat import ChatGemini

        llm = ChatGemini(model="gemini-2.5-flash")  # key from GEMINI_API_KEY or GOOGLE_API_KEY
        llm.invoke("hi")
        ChatGemini(thinking_budget=1024, include_thoughts=True).stream("why is the sky blue?")
        ```
    """

    model: str = Field(default="gemini-2.5-flash", alias="model_name")
    api_key: SecretStr | None = Field(
        alias="google_api_key",
        default_factory=secret_from_env(["GEMINI_API_KEY", "GOOGLE_API_KEY"], default=None),
    )
    base_url: str = Field(
        default_factory=from_env("GOOGLE_GEMINI_BASE_URL", default=DEFAULT_BASE_URL)
    )
    """The API root, `https://generativelanguage.googleapis.com` (the SDK adds `/v1beta/`)."""
    top_k: int | None = None
    thinking_budget: int | None = None
    """Thinking tokens for Gemini 2.5 models: 0 turns thinking off (Flash), -1 lets the model decide."""
    thinking_level: str | None = None
    """Gemini 3 thinking depth ("low", "high")."""
    include_thoughts: bool | None = None
    """Return thought summaries in `additional_kwargs["reasoning_content"]`."""
    safety_settings: list[dict[str, Any]] | None = None
    """Gemini safety settings, e.g. `[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]`."""

    provider: ClassVar[str] = "gemini"
    # Gemini's per-call generation options (GenerationConfig, ThinkingConfig); safety settings
    # stay an operator setting.
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | {
        "top_k",
        "thinking_budget",
        "thinking_level",
        "include_thoughts",
    }

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "GEMINI_API_KEY"}

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_chatchat", "chat_models", "gemini"]

    def _extra_params(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "thinking_budget": self.thinking_budget,
            "thinking_level": self.thinking_level,
            "include_thoughts": self.include_thoughts,
            "safety_settings": self.safety_settings,
        }

    def _build_worker(self) -> GeminiWorker:
        return GeminiWorker(
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )
