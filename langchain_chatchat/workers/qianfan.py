"""Baidu Qianfan (ERNIE) through the current OpenAI-style v2 API with bearer API keys.

Transport: HTTPTransport via the OpenAI-compatible worker. The `qianfan` SDK targets the older
AK/SK + access-token API and is heavy; v2 needs neither.
"""

from __future__ import annotations

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
from langchain_chatchat.workers.limits import TextLimit
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
    ResponseFormat,
)
from langchain_chatchat.workers.sampling import SamplingRanges

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

    def sampling_ranges(self, model: str) -> SamplingRanges:
        """ERNIE: temperature in (0, 1] — 0 is refused — and top_p in [0, 1] (cloud.baidu.com/
        doc/qianfan-api/s/3m7of64lb, 对话Chat V2 请求参数); 0 is sent as 0.01. Other models on
        Qianfan follow their own ranges and are left alone."""
        if model.lower().startswith("ernie"):
            return {"temperature": (0.01, 1.0), "top_p": (0.0, 1.0)}
        return {}


class QianfanEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """Qianfan embeddings: at most 16 texts per request (tao-8k: one); per text, embedding-v1
    384 tokens / 1000 characters, bge-large-zh/en 512 tokens / 2000 characters, tao-8k 8192
    tokens / 28000 characters (cloud.baidu.com/doc/qianfan-api/s/Fm7u3ropn, 向量Embeddings;
    tao-8k's character count unverified)."""

    endpoint: ClassVar[Endpoint] = QIANFAN
    default_batch_size: ClassVar[int] = 16
    batch_limits: ClassVar = {
        "embedding-v1": 16,
        "bge-large-zh": 16,
        "bge-large-en": 16,
        "tao-8k": 1,
    }
    text_limits: ClassVar = {
        "embedding-v1": TextLimit(chars=1000, tokens=384),
        "bge-large-zh": TextLimit(chars=2000, tokens=512),
        "bge-large-en": TextLimit(chars=2000, tokens=512),
        "tao-8k": TextLimit(chars=28000, tokens=8192),
    }
