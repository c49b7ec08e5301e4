"""Zhipu AI (BigModel, GLM-4 family) through its OpenAI-style v4 API.

Transport: HTTPTransport via the OpenAI-compatible worker. The `zhipuai` SDK's async API is a polling
task API rather than asyncio streaming, so httpx gives a truly async stream instead.

Authentication follows Zhipu's docs for non-SDK callers: the `{id}.{secret}` API key is signed
into a short-lived HS256 JWT — header `{"alg": "HS256", "sign_type": "SIGN"}`, payload
`{"api_key": id, "exp": ms, "timestamp": ms}` — sent as a Bearer token; the plain key is
accepted too (`use_jwt=False`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from typing import ClassVar

from langchain_chatchat.workers.content import MIB, MediaRules, pattern
from langchain_chatchat.workers.endpoint import Auth, Endpoint
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    ContentFilterError,
    ContextLengthError,
    ErrorTable,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamServerError,
)
from langchain_chatchat.workers.limits import TextLimit
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
    ResponseFormat,
    ToolChoiceMode,
)
from langchain_chatchat.workers.sampling import SamplingRanges
from langchain_chatchat.workers.types import WorkerMessage

DEFAULT_BASE_URL = "https://open.bigmodel.cn/api/paas/v4"
TOKEN_TTL_SECONDS = 180
_REFRESH_MARGIN_SECONDS = 30


def zhipu_jwt(api_key: str, ttl_seconds: int = TOKEN_TTL_SECONDS, now: float | None = None) -> str:
    """Sign a Zhipu `{id}.{secret}` API key into the JWT its HTTP API accepts."""
    key_id, _, secret = api_key.partition(".")
    if not key_id or not secret:
        raise AuthenticationError("a Zhipu API key looks like '{id}.{secret}'", provider="zhipu")
    millis = int((time.time() if now is None else now) * 1000)
    header = {"alg": "HS256", "sign_type": "SIGN"}
    payload = {"api_key": key_id, "exp": millis + ttl_seconds * 1000, "timestamp": millis}
    signing_input = f"{_b64(json.dumps(header, separators=(',', ':')).encode())}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class ZhipuAuth(Auth):
    """The `{id}.{secret}` key signed into a short-lived JWT, refreshed before it expires; the
    plain key as a Bearer token with `use_jwt=False` (or a key without a secret part)."""

    def __init__(self, api_key: str | None, *, use_jwt: bool = True) -> None:
        super().__init__(api_key)
        self.use_jwt = use_jwt and "." in (api_key or "")
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        if not self.use_jwt:
            return super().headers()
        with self._lock:
            now = time.time()
            if self._token is None or self._token[1] - _REFRESH_MARGIN_SECONDS <= now:
                self._token = (zhipu_jwt(self.api_key or "", now=now), now + TOKEN_TTL_SECONDS)
            return {"Authorization": f"Bearer {self._token[0]}"}


ZHIPU = Endpoint(
    provider="zhipu",
    default_base_url=DEFAULT_BASE_URL,
    api_key_env="ZHIPUAI_API_KEY",
    base_url_env="ZHIPUAI_BASE_URL",
    auth=ZhipuAuth,
    # `{"error": {"code": "1214", "message": ...}}` with the business codes of Zhipu's error
    # reference (1000-1004 auth, 1110-1121 account, 1210-1234 call, 1261 prompt too long,
    # 1301 unsafe content, 1302-1305 rate/quota, 1308-1310 usage/plan limits reached — quota
    # errors that waiting a moment does not cure, so not retryable).
    errors=ErrorTable(
        {
            **dict.fromkeys(("1000", "1001", "1002", "1003", "1004"), AuthenticationError),
            **dict.fromkeys(
                ("1110", "1111", "1112", "1113", "1121", "1220", "1304", "1308", "1309", "1310"),
                PermissionDeniedError,
            ),
            **dict.fromkeys(("1211", "1221", "1222"), NotFoundError),
            **dict.fromkeys(("500", "1120", "1230", "1234"), UpstreamServerError),
            "1261": ContextLengthError,
            "1301": ContentFilterError,
            **dict.fromkeys(("1302", "1303", "1305"), RateLimitError),
        }
    ),
)


class ZhipuWorker(OpenAICompatibleWorker):
    """GLM chat (glm-4-plus, glm-4-flash, glm-4.5/4.6 with thinking, glm-4v vision).

    - GLM thinking output arrives as reasoning_content (`thinking={"type": "enabled"}`);
    - tool_choice accepts only "auto": a forced tool is sent as the only tool offered;
    - one stop word; JSON mode but no json_schema;
    - usage always comes on the final stream chunk, so stream_options is not sent;
    - a conversation must contain a user turn (not only system/assistant turns);
    - temperature in [0, 1] and top_p in [0.01, 1] (docs.bigmodel.cn/api-reference 对话补全;
      else 400 code 1210): values outside are clamped, as the `zhipuai` SDK's
      chat/completions.py clamps them;
    - finish_reason `model_context_window_exceeded` is a cut-off reply ("length").
    """

    endpoint: ClassVar[Endpoint] = ZHIPU
    include_usage_option: ClassVar[bool] = False
    tool_choices: ClassVar[frozenset[ToolChoiceMode]] = frozenset({"auto"})
    response_formats: ClassVar[frozenset[ResponseFormat]] = frozenset({"json_object"})
    max_stop: ClassVar[int] = 1
    media_rules: ClassVar[MediaRules] = MediaRules(
        # GLM-4V docs: images by URL or base64, jpg/png/jpeg, at most 5 MB and 6000x6000 pixels
        # each; glm-4v-plus and the GLM-4.xV models also take `video_url`. Both official SDKs
        # (zhipuai `drop_prefix_image_data`, zai-sdk) strip the `data:image/...;base64,` prefix,
        # so inline images go as bare base64.
        models=pattern(r"^glm-[\d.]+v"),
        formats=frozenset({"png", "jpeg"}),
        max_image_bytes=5 * MIB,
        max_side=6000,
        inline="base64",
        detail=False,
        video_models=pattern(r"^glm-4v-plus|^glm-4\.\d+v"),
        # video understanding: by URL, mp4, at most 20 MB (glm-4v-plus, the family's strictest)
        video_formats=frozenset({"mp4"}),
        video_inline=False,
        example="glm-4v-plus",
    )
    metadata_keys: ClassVar = ("web_search",)
    """The web_search tool's results (docs.bigmodel.cn 网络搜索: a top-level `web_search` list
    of {title, link, content, media, icon, refer}) reach `response_metadata["web_search"]`."""

    def sampling_ranges(self, model: str) -> SamplingRanges:
        return {"temperature": (0.0, 1.0), "top_p": (0.01, 1.0)}

    def validate_messages(self, messages: list[WorkerMessage]) -> list[WorkerMessage]:
        messages = super().validate_messages(messages)
        if not any(message.role == "user" for message in messages):
            raise self._bad_messages(
                "Zhipu needs at least one user message (not only system/assistant turns)"
            )
        return messages


class ZhipuEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """embedding-3 (64 texts per request, dimensions 256/512/1024/2048, 3072 tokens per text) and
    embedding-2 (512 tokens per text, 8K per request) — docs.bigmodel.cn/api-reference 文本嵌入."""

    endpoint: ClassVar[Endpoint] = ZHIPU
    default_batch_size: ClassVar[int] = 64
    batch_limits: ClassVar[Mapping[str, int]] = {"embedding-3": 64, "embedding-2": 16}
    text_limits: ClassVar[Mapping[str, TextLimit]] = {
        "embedding-3": TextLimit(tokens=3072),
        "embedding-2": TextLimit(tokens=512, request_tokens=8000),  # "8K": the stricter reading
    }
