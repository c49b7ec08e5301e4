"""Baichuan (百川): OpenAI-style chat and embeddings at api.baichuan-ai.com/v1.

Transport: HTTPTransport via the OpenAI-compatible worker (Baichuan has no maintained Python SDK).
"""

from __future__ import annotations

import re
from typing import ClassVar

from langchain_chatchat.workers.base import MessageRules
from langchain_chatchat.workers.endpoint import Endpoint
from langchain_chatchat.workers.errors import ErrorTable, PermissionDeniedError
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
    ResponseFormat,
    ToolChoiceMode,
)
from langchain_chatchat.workers.sampling import SamplingRanges

DEFAULT_BASE_URL = "https://api.baichuan-ai.com/v1"


BAICHUAN = Endpoint(
    provider="baichuan",
    default_base_url=DEFAULT_BASE_URL,
    api_key_env="BAICHUAN_API_KEY",
    base_url_env="BAICHUAN_BASE_URL",
    # An exhausted balance comes as HTTP 429 (platform.baichuan-ai.com/docs/api, 错误码:
    # "insufficient_quota" / 余额不足): a quota error, not a throttle worth retrying.
    errors=ErrorTable(
        {"insufficient_quota": PermissionDeniedError},
        messages=(
            (
                re.compile(r"insufficient (?:balance|quota)|余额不足", re.IGNORECASE),
                PermissionDeniedError,
            ),
        ),
    ),
)


class BaichuanWorker(OpenAICompatibleWorker):
    """Baichuan4 / Baichuan3-Turbo chat: text only, tools with "auto" choice only, no JSON
    response formats; usage comes on the final stream chunk (no stream_options)."""

    endpoint: ClassVar[Endpoint] = BAICHUAN
    message_rules: ClassVar[MessageRules] = MessageRules(images=False)
    include_usage_option: ClassVar[bool] = False
    tool_choices: ClassVar[frozenset[ToolChoiceMode]] = frozenset({"auto"})
    response_formats: ClassVar[frozenset[ResponseFormat]] = frozenset()

    def sampling_ranges(self, model: str) -> SamplingRanges:
        """temperature in [0, 1], top_p in [0, 1) (platform.baichuan-ai.com/docs/api, 请求参数);
        top_p 1 is sent as 0.99."""
        return {"temperature": (0.0, 1.0), "top_p": (0.0, 0.99)}


class BaichuanEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """Baichuan-Text-Embedding: at most 16 texts per request."""

    endpoint: ClassVar[Endpoint] = BAICHUAN
    default_batch_size: ClassVar[int] = 16
