"""ChatQwen: Qwen models on Alibaba DashScope's native API."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.utils import from_env, secret_from_env
from pydantic import Field, SecretStr

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.workers.qwen import DEFAULT_BASE_URL, QwenWorker


class ChatQwen(ChatchatChatModel):
    """Qwen chat models through the official `dashscope` SDK.

    Example:
        ```python
        from langchain_chatchat import ChatQwen

        llm = ChatQwen(model="qwen-plus")  # key from DASHSCOPE_API_KEY
        llm.invoke("hi")
        ChatQwen(model="qwen3-8b", enable_thinking=True).stream("why is the sky blue?")
        ```
    """

    model: str = Field(default="qwen-plus", alias="model_name")
    api_key: SecretStr | None = Field(
        alias="dashscope_api_key",
        default_factory=secret_from_env("DASHSCOPE_API_KEY", default=None),
    )
    base_url: str = Field(
        default_factory=from_env("DASHSCOPE_HTTP_BASE_URL", default=DEFAULT_BASE_URL)
    )
    """DashScope HTTP base such as `https://dashscope.aliyuncs.com/api/v1`."""
    enable_thinking: bool | None = None
    """Hybrid-thinking models (Qwen3): return reasoning in `additional_kwargs["reasoning_content"]`."""
    enable_search: bool | None = None
    """Let Qwen search the web before answering."""
    multimodal: bool | None = None
    """Use DashScope's multimodal endpoint (images, video). None: by model name — qwen-vl-*,
    qwen2.5-vl-*, qwen3-vl-*, qvq-* are multimodal; set True for other vision models."""
    local_media_dir: str | None = None
    """Directory from which `file://` image and video URLs may be read (None: refused)."""

    provider: ClassVar[str] = "qwen"
    # DashScope's per-call generation parameters (Model Studio text-generation API reference).
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | {
        "enable_thinking",
        "thinking_budget",
        "enable_search",
        "search_options",
        "top_k",
        "repetition_penalty",
        "translation_options",
    }

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "DASHSCOPE_API_KEY"}

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_chatchat", "chat_models", "qwen"]

    def _extra_params(self) -> dict[str, Any]:
        return {"enable_thinking": self.enable_thinking, "enable_search": self.enable_search}

    def _build_worker(self) -> QwenWorker:
        return QwenWorker(
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            base_url=self.base_url,
            multimodal=self.multimodal,
            local_media_dir=self.local_media_dir,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )
