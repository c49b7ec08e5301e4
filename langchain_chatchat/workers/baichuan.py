"""Baichuan (百川): OpenAI-style chat and embeddings at api.baichuan-ai.com/v1.

Transport: httpx via the OpenAI-compatible worker (Baichuan has no maintained Python SDK).
"""

from __future__ import annotations

from typing import ClassVar

from langchain_chatchat.workers.base import MessageRules
from langchain_chatchat.workers.errors import ChatchatError, PermissionDeniedError
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleClient,
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
)
from langchain_chatchat.workers.sampling import SamplingRanges

DEFAULT_BASE_URL = "https://api.baichuan-ai.com/v1"


class _BaichuanClient(OpenAICompatibleClient):
    provider: ClassVar[str] = "baichuan"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    api_key_env: ClassVar[str] = "BAICHUAN_API_KEY"
    base_url_env: ClassVar[str | None] = "BAICHUAN_BASE_URL"
    api_key_required: ClassVar[bool] = True

    def classify_error(
        self, status: int, code: str | None, kind: str | None, message: str
    ) -> type[ChatchatError]:
        """Baichuan answers an exhausted balance with HTTP 429 (platform.baichuan-ai.com/docs/api,
        错误码: 429 "insufficient_quota"/余额不足): a quota error, not a throttle to retry."""
        lowered = message.lower()
        if status == 429 and (
            "insufficient" in (code or "") + (kind or "") + lowered or "余额" in message
        ):
            return PermissionDeniedError
        return super().classify_error(status, code, kind, message)


class BaichuanWorker(_BaichuanClient, OpenAICompatibleWorker):
    """Baichuan4 / Baichuan3-Turbo chat: text only, tools with "auto" choice only, no JSON
    response formats; usage comes on the final stream chunk (no stream_options)."""

    message_rules: ClassVar[MessageRules] = MessageRules(images=False)
    include_usage_option: ClassVar[bool] = False
    tool_choices: ClassVar[frozenset[str]] = frozenset({"auto"})
    response_formats: ClassVar[frozenset[str]] = frozenset()

    def sampling_ranges(self, model: str) -> SamplingRanges:
        """temperature in [0, 1], top_p in [0, 1) (platform.baichuan-ai.com/docs/api, 请求参数);
        top_p 1 is sent as 0.99."""
        return {"temperature": (0.0, 1.0), "top_p": (0.0, 0.99)}


class BaichuanEmbeddingWorker(_BaichuanClient, OpenAICompatibleEmbeddingWorker):
    """Baichuan-Text-Embedding: at most 16 texts per request."""

    default_batch_size: ClassVar[int] = 16
