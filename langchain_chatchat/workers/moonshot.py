"""Moonshot AI (Kimi): OpenAI-style chat at api.moonshot.cn/v1.

Transport: httpx via the OpenAI-compatible worker (Moonshot documents the OpenAI SDK and has no
SDK of its own). Quirks handled by the base: streamed usage arrives inside the finishing choice
(`choices[0].usage`), cached tokens as a top-level `cached_tokens`.
"""

from __future__ import annotations

from typing import ClassVar

from langchain_chatchat.workers.content import MediaRules, pattern
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    ContentFilterError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamUnavailableError,
)
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker

DEFAULT_BASE_URL = "https://api.moonshot.cn/v1"


class MoonshotWorker(OpenAICompatibleWorker):
    """Kimi / moonshot-v1 models. Moonshot's errors carry a `type` and no code; the types from its
    error reference are mapped here. `tool_choice` "required" is not accepted (it becomes "auto");
    a named tool is forced by offering only that tool."""

    provider: ClassVar[str] = "moonshot"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    api_key_env: ClassVar[str] = "MOONSHOT_API_KEY"
    base_url_env: ClassVar[str | None] = "MOONSHOT_BASE_URL"
    api_key_required: ClassVar[bool] = True
    tool_choices: ClassVar[frozenset[str]] = frozenset({"auto", "none"})
    response_formats: ClassVar[frozenset[str]] = frozenset({"json_object"})
    media_rules: ClassVar[MediaRules] = MediaRules(
        # "Use the Kimi Vision Model": moonshot-v1-*-vision-preview, kimi-latest and kimi-k2.5+
        # take png/jpeg/webp/gif as base64 data URLs; "URL-formatted images: Not supported"
        # (the API answers "unsupported image url"); kimi-k2.5 also understands video.
        models=pattern(r"vision|^kimi-latest|^kimi-k2\.[5-9]|^kimi-k[3-9]"),
        remote_urls=False,
        video_models=pattern(r"^kimi-k2\.[5-9]|^kimi-k[3-9]"),
        example="moonshot-v1-8k-vision-preview",
    )
    error_codes: ClassVar = {
        "content_filter": ContentFilterError,
        "invalid_authentication_error": AuthenticationError,
        "incorrect_api_key_error": AuthenticationError,
        "exceeded_current_quota_error": PermissionDeniedError,
        "permission_denied_error": PermissionDeniedError,
        "resource_not_found_error": NotFoundError,
        "rate_limit_reached_error": RateLimitError,
        "engine_overloaded_error": RateLimitError,
        "unexpected_output": UpstreamUnavailableError,
    }
