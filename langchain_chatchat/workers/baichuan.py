"""Baichuan (百川): OpenAI-style chat and embeddings at api.baichuan-ai.com/v1.

Transport: httpx via the OpenAI-compatible worker (Baichuan has no maintained Python SDK).
"""

from __future__ import annotations

from typing import ClassVar

from langchain_chatchat.workers.base import MessageRules
from langchain_chatchat.workers.endpoint import Endpoint
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
    ResponseFormat,
    ToolChoiceMode,
)

DEFAULT_BASE_URL = "https://api.baichuan-ai.com/v1"


BAICHUAN = Endpoint(
    provider="baichuan",
    default_base_url=DEFAULT_BASE_URL,
    api_key_env="BAICHUAN_API_KEY",
    base_url_env="BAICHUAN_BASE_URL",
)


class BaichuanWorker(OpenAICompatibleWorker):
    """Baichuan4 / Baichuan3-Turbo chat: text only, tools with "auto" choice only, no JSON
    response formats; usage comes on the final stream chunk (no stream_options)."""

    endpoint: ClassVar[Endpoint] = BAICHUAN
    message_rules: ClassVar[MessageRules] = MessageRules(images=False)
    include_usage_option: ClassVar[bool] = False
    tool_choices: ClassVar[frozenset[ToolChoiceMode]] = frozenset({"auto"})
    response_formats: ClassVar[frozenset[ResponseFormat]] = frozenset()


class BaichuanEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """Baichuan-Text-Embedding: at most 16 texts per request."""

    endpoint: ClassVar[Endpoint] = BAICHUAN
    default_batch_size: ClassVar[int] = 16
