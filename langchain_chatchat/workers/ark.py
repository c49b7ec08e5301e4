"""Volcengine Ark (火山方舟): Doubao models and custom endpoint ids (`ep-...`), OpenAI-style v3 API.

Transport: httpx via the OpenAI-compatible worker. The official `volcengine-python-sdk[ark]`
has an async client, but it wraps this same wire format and pulls in a large dependency tree.
"""

from __future__ import annotations

from typing import ClassVar

from langchain_chatchat.workers.content import MIB, MediaRules, pattern
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
    media_rules: ClassVar[MediaRules] = MediaRules(
        # Ark visual understanding guide: doubao-*vision* and doubao-seed-1.6+ take images (URL
        # or base64 data URL, `detail` low/high/auto); JPEG/PNG/GIF/WEBP/BMP/TIFF/HEIC, at most
        # 10 MB each, sides over 14 px, at most 36 M pixels (unverified); seed models also take
        # `video_url`. Endpoint ids (`ep-...`) may serve any model, so they are let through.
        models=pattern(r"vision|seed-1[-.][68]|seed-[2-9]|^ep-"),
        formats=frozenset({"png", "jpeg", "gif", "webp", "bmp", "tiff", "heic"}),
        max_image_bytes=10 * MIB,
        min_side=14,
        max_pixels=36_000_000,
        video_models=pattern(r"seed-1[-.][68]|seed-[2-9]|^ep-"),
        example="doubao-1.5-vision-pro",
    )


class ArkEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """Doubao text embeddings (doubao-embedding-*)."""

    endpoint: ClassVar[Endpoint] = ARK
