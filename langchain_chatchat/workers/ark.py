"""Volcengine Ark (火山方舟): Doubao models and custom endpoint ids (`ep-...`), OpenAI-style v3 API.

Transport: httpx via the OpenAI-compatible worker. The official `volcengine-python-sdk[ark]`
has an async client, but it wraps this same wire format and pulls in a large dependency tree.
"""

from __future__ import annotations

from typing import ClassVar

from langchain_chatchat.workers.content import MIB, MediaRules, pattern
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    ContentFilterError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleClient,
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
)

DEFAULT_BASE_URL = "https://ark.cn-beijing.volces.com/api/v3"


class _ArkClient(OpenAICompatibleClient):
    """Bearer ARK_API_KEY. Errors are `{"error": {"code", "message", "param", "type"}}` with the
    codes of Ark's error reference; dotted sub-codes (RateLimitExceeded.EndpointRPMExceeded,
    SensitiveContentDetected.Violence, ...) map by their first part."""

    provider: ClassVar[str] = "ark"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    api_key_env: ClassVar[str] = "ARK_API_KEY"
    base_url_env: ClassVar[str | None] = "ARK_BASE_URL"
    api_key_required: ClassVar[bool] = True
    error_codes: ClassVar = {
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


class ArkWorker(_ArkClient, OpenAICompatibleWorker):
    """Doubao chat, vision and thinking models (reasoning_content; `thinking={"type": ...}`)."""

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


class ArkEmbeddingWorker(_ArkClient, OpenAICompatibleEmbeddingWorker):
    """Doubao text embeddings (doubao-embedding-*)."""
