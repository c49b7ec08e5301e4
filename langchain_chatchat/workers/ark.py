"""Volcengine Ark (火山方舟): Doubao models and custom endpoint ids (`ep-...`), OpenAI-style v3 API.

Transport: HTTPTransport via the OpenAI-compatible worker. The official `volcengine-python-sdk[ark]`
has an async client, but it wraps this same wire format and pulls in a large dependency tree.
"""

from __future__ import annotations

import re
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
from langchain_chatchat.workers.limits import TextLimit
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
    ToolChoiceMode,
)

DEFAULT_BASE_URL = "https://ark.cn-beijing.volces.com/api/v3"
# tool_choice "required" and a named function are documented for doubao-seed-1.6 and later only
# (www.volcengine.com/docs/82379/1494384, 对话(Chat) API: tool_choice); other models — and
# endpoint ids, whose model cannot be seen — take "auto"/"none" (unverified which older models
# refuse it: the stricter reading).
_FORCED_TOOLS = re.compile(r"doubao-seed-(?:1[-.][6-9]|[2-9])")


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
    """Doubao chat, vision and thinking models (reasoning_content; `thinking={"type":
    "enabled"|"disabled"|"auto"}`, `reasoning_effort`)."""

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
        # video understanding guide: mp4, avi, mov; at most 50 MB (unverified)
        video_formats=frozenset({"mp4", "avi", "mov"}),
        max_video_bytes=50 * MIB,
        example="doubao-1.5-vision-pro",
    )

    def tool_choice_forms(self, model: str) -> frozenset[ToolChoiceMode]:
        if _FORCED_TOOLS.match(model):
            return self.tool_choices
        return frozenset({"auto", "none"})


class ArkEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """Doubao text embeddings (doubao-embedding-*: 4096 tokens per text, volcengine.com/docs/
    82379/1521766; the large and vision models' own limits are not checked)."""

    endpoint: ClassVar[Endpoint] = ARK
    text_limits: ClassVar = {
        "doubao-embedding": TextLimit(tokens=4096),
        "doubao-embedding-text-240515": TextLimit(tokens=4096),
        "doubao-embedding-text-240715": TextLimit(tokens=4096),
    }
