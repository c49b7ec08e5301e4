"""Volcengine Ark (火山方舟): Doubao models and custom endpoint ids (`ep-...`), OpenAI-style v3 API.

Transport: httpx via the OpenAI-compatible worker. The official `volcengine-python-sdk[ark]`
has an async client, but it wraps this same wire format and pulls in a large dependency tree.
"""

from __future__ import annotations

from typing import ClassVar

from langchain_chatchat.workers.endpoint import Endpoint
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    ContentFilterError,
    ErrorTable,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
)

DEFAULT_BASE_URL = "https://ark.cn-beijing.volces.com/api/v3"


ARK = Endpoint(
    provider="ark",
    default_base_url=DEFAULT_BASE_URL,
    api_key_env="ARK_API_KEY",
    base_url_env="ARK_BASE_URL",
    # `{"error": {"code", "message", "param", "type"}}` with the codes of Ark's error reference;
    # dotted sub-codes (RateLimitExceeded.EndpointRPMExceeded, SensitiveContentDetected.Violence,
    # ...) map by their first part.
    errors=ErrorTable(
        {
            "AuthenticationError": AuthenticationError,
            "AccountOverdueError": PermissionDeniedError,
            "AccessDenied": PermissionDeniedError,
            "QuotaExceeded": PermissionDeniedError,
            "InvalidEndpointOrModel": NotFoundError,
            "InvalidEndpoint": NotFoundError,
            "ModelNotOpen": PermissionDeniedError,
            "SensitiveContentDetected": ContentFilterError,
            "InputTextSensitiveContentDetected": ContentFilterError,
            "InputImageSensitiveContentDetected": ContentFilterError,
            "OutputTextSensitiveContentDetected": ContentFilterError,
            "RateLimitExceeded": RateLimitError,
            "ServerOverloaded": RateLimitError,
        }
    ),
)


class ArkWorker(OpenAICompatibleWorker):
    """Doubao chat, vision and thinking models (reasoning_content; `thinking={"type": ...}`)."""

    endpoint: ClassVar[Endpoint] = ARK


class ArkEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """Doubao text embeddings (doubao-embedding-*)."""

    endpoint: ClassVar[Endpoint] = ARK
