"""Moonshot AI (Kimi): OpenAI-style chat at api.moonshot.cn/v1.

Transport: HTTPTransport via the OpenAI-compatible worker (Moonshot documents the OpenAI SDK
and has no SDK of its own). Quirks handled by the base: streamed usage arrives inside the
finishing choice (`choices[0].usage`), cached tokens as a top-level `cached_tokens`.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from langchain_chatchat.workers.content import MIB, MediaRules, pattern
from langchain_chatchat.workers.endpoint import Endpoint
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    ContentFilterError,
    ErrorTable,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamServerError,
)
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleWorker,
    ResponseFormat,
    ToolChoiceMode,
)

DEFAULT_BASE_URL = "https://api.moonshot.cn/v1"
INTERNATIONAL_BASE_URL = "https://api.moonshot.ai/v1"
# kimi-k2.5 and later document max_completion_tokens; max_tokens is deprecated there
# (platform.moonshot.cn/docs/api/chat, "max_tokens: deprecated, use max_completion_tokens").
_MAX_COMPLETION_TOKENS = re.compile(r"kimi-k(?:2\.[5-9]|[3-9])")


MOONSHOT = Endpoint(
    provider="moonshot",
    default_base_url=DEFAULT_BASE_URL,
    api_key_env="MOONSHOT_API_KEY",
    base_url_env="MOONSHOT_BASE_URL",
    # Moonshot's errors carry a `type` and no code: the types of its error reference.
    errors=ErrorTable(
        {
            "content_filter": ContentFilterError,
            "invalid_authentication_error": AuthenticationError,
            "incorrect_api_key_error": AuthenticationError,
            "exceeded_current_quota_error": PermissionDeniedError,
            "permission_denied_error": PermissionDeniedError,
            "resource_not_found_error": NotFoundError,
            "rate_limit_reached_error": RateLimitError,
            "engine_overloaded_error": RateLimitError,
            "unexpected_output": UpstreamServerError,
        }
    ),
)


class MoonshotWorker(OpenAICompatibleWorker):
    """Kimi / moonshot-v1 models. `tool_choice` "required" is not accepted (it becomes "auto");
    a named tool is forced by offering only that tool.

    Thinking models (kimi-k2-thinking, kimi-k2.5+ with `thinking` on) need each assistant
    tool-call turn sent back with its `reasoning_content` (400 "thinking is enabled but
    reasoning_content is missing in assistant tool call message at index N",
    platform.moonshot.cn/docs/guide/use-kimi-k2-thinking-model), so it is echoed."""

    endpoint: ClassVar[Endpoint] = MOONSHOT
    tool_choices: ClassVar[frozenset[ToolChoiceMode]] = frozenset({"auto", "none"})
    response_formats: ClassVar[frozenset[ResponseFormat]] = frozenset({"json_object"})
    echo_reasoning: ClassVar[Literal["never", "tool_calls", "always"]] = "tool_calls"
    media_rules: ClassVar[MediaRules] = MediaRules(
        # "Use the Kimi Vision Model": moonshot-v1-*-vision-preview, kimi-latest and kimi-k2.5+
        # take png/jpeg/webp/gif as base64 data URLs; "URL-formatted images: Not supported"
        # (the API answers "unsupported image url"); kimi-k2.5 also understands video.
        models=pattern(r"vision|^kimi-latest|^kimi-k2\.[5-9]|^kimi-k[3-9]"),
        remote_urls=False,
        video_models=pattern(r"^kimi-k2\.[5-9]|^kimi-k[3-9]"),
        # the vision guide's video formats; 100 MB as for uploaded files (unverified)
        video_formats=frozenset({"mp4", "mpeg", "mov", "avi", "flv", "webm", "wmv", "3gp"}),
        max_video_bytes=100 * MIB,
        example="moonshot-v1-8k-vision-preview",
    )

    def max_tokens_field(self, model: str) -> str:
        return "max_completion_tokens" if _MAX_COMPLETION_TOKENS.match(model) else "max_tokens"
