"""Baichuan (百川): OpenAI-style chat and embeddings at api.baichuan-ai.com/v1.

Transport: httpx via the OpenAI-compatible worker (Baichuan has no maintained Python SDK).
"""

from __future__ import annotations

from typing import ClassVar

from langchain_chatchat.workers.base import MessageRules
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleClient,
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
)

DEFAULT_BASE_URL = "https://api.baichuan-ai.com/v1"


class _BaichuanClient(OpenAICompatibleClient):
    provider: ClassVar[str] = "baichuan"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    api_key_env: ClassVar[str] = "BAICHUAN_API_KEY"
    base_url_env: ClassVar[str | None] = "BAICHUAN_BASE_URL"
    api_key_required: ClassVar[bool] = True


class BaichuanWorker(_BaichuanClient, OpenAICompatibleWorker):
    """Baichuan4 / Baichuan3-Turbo chat: text only, tools with "auto" choice only, no JSON
    response formats; usage comes on the final stream chunk (no stream_options)."""

    message_rules: ClassVar[MessageRules] = MessageRules(images=False)
    include_usage_option: ClassVar[bool] = False
    tool_choices: ClassVar[frozenset[str]] = frozenset({"auto"})
    response_formats: ClassVar[frozenset[str]] = frozenset()


class BaichuanEmbeddingWorker(_BaichuanClient, OpenAICompatibleEmbeddingWorker):
    """Baichuan-Text-Embedding: at most 16 texts per request."""

    default_batch_size: ClassVar[int] = 16
