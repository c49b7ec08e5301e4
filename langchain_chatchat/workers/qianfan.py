"""Baidu Qianfan (ERNIE) through the current OpenAI-style v2 API with bearer API keys.

Transport: HTTPTransport via the OpenAI-compatible worker. The `qianfan` SDK targets the older
AK/SK + access-token API and is heavy; v2 needs neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from langchain_chatchat.workers.base import MessageRules
from langchain_chatchat.workers.endpoint import Endpoint
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    ContentFilterError,
    ContextLengthError,
    ErrorTable,
    PermissionDeniedError,
    RateLimitError,
)
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
    ResponseFormat,
)

DEFAULT_BASE_URL = "https://qianfan.baidubce.com/v2"


QIANFAN = Endpoint(
    provider="qianfan",
    default_base_url=DEFAULT_BASE_URL,
    api_key_env="QIANFAN_API_KEY",
    base_url_env="QIANFAN_BASE_URL",
    # `Authorization: Bearer bce-v3/ALTAK-...` (optional `appid` header via default_headers).
    # Errors are `{"error": {"code", "message", "type"}, "id"}` with Qianfan's v2 codes.
    errors=ErrorTable(
        {
            "invalid_iam_token": AuthenticationError,
            "no_parameter_permission": PermissionDeniedError,
            "rpm_rate_limit_exceeded": RateLimitError,
            "tpm_rate_limit_exceeded": RateLimitError,
            "rate_limit_exceeded": RateLimitError,
            "tokens_too_long": ContextLengthError,
            "characters_too_long": ContextLengthError,
            "unsafe_request": ContentFilterError,
        }
    ),
)


class QianfanWorker(OpenAICompatibleWorker):
    """ERNIE chat. ERNIE conversations alternate user/assistant after the system prompt, so
    back-to-back user (or assistant) turns are merged instead of being refused upstream."""

    endpoint: ClassVar[Endpoint] = QIANFAN
    message_rules: ClassVar[MessageRules] = MessageRules(
        merge_consecutive=True, alternate=True, images=True
    )
    response_formats: ClassVar[frozenset[ResponseFormat]] = frozenset(
        {"json_object", "json_schema"}
    )
    max_stop: ClassVar[int] = 4


class QianfanEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """Qianfan embeddings: at most 16 texts per request (tao-8k: one)."""

    endpoint: ClassVar[Endpoint] = QIANFAN
    default_batch_size: ClassVar[int] = 16
    batch_limits: ClassVar[Mapping[str, int]] = {
        "embedding-v1": 16,
        "bge-large-zh": 16,
        "bge-large-en": 16,
        "tao-8k": 1,
    }
