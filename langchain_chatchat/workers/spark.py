"""iFlytek Spark (讯飞星火) through its OpenAI-style HTTP API.

Transport: httpx via the OpenAI-compatible worker. The legacy HMAC-signed websocket protocol
(what Chatchat 0.2 used) is not implemented; the HTTP API covers the same models (lite,
generalv3 = Pro, pro-128k, generalv3.5 = Max, max-32k, 4.0Ultra).

Spark answers every request — errors included — with a body carrying `code` (0 on success),
`message` and `sid`; in-stream errors come the same way inside the SSE data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from langchain_chatchat.workers.base import MessageRules
from langchain_chatchat.workers.errors import (
    ContentFilterError,
    ContextLengthError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamUnavailableError,
)
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker
from langchain_chatchat.workers.types import ChatRequest

DEFAULT_BASE_URL = "https://spark-api-open.xf-yun.com/v1"


class SparkWorker(OpenAICompatibleWorker):
    """Bearer `APIPassword` (or `APIKey:APISecret`). Tools on Max / 4.0Ultra with "auto" choice
    only; text only; usage on the final chunk. Error codes from Spark's reference: 10013/10014/
    10019/10021 content audit, 10907 too many tokens, 11200 not authorised, 11201 daily limit,
    11202/11203 rate and concurrency limits, 10007 busy with the previous request.

    Tools need `tool_calls_switch: true` (www.xfyun.cn/doc/spark/HTTP调用文档.html, 请求参数):
    without it the model writes its tool call as JSON text in `content`."""

    provider: ClassVar[str] = "spark"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    api_key_env: ClassVar[str] = "IFLYTEK_SPARK_API_PASSWORD"
    base_url_env: ClassVar[str | None] = "IFLYTEK_SPARK_BASE_URL"
    api_key_required: ClassVar[bool] = True
    message_rules: ClassVar[MessageRules] = MessageRules(images=False)
    include_usage_option: ClassVar[bool] = False
    tool_choices: ClassVar[frozenset[str]] = frozenset({"auto"})
    response_formats: ClassVar[frozenset[str]] = frozenset()
    error_codes: ClassVar = {
        **dict.fromkeys(("10013", "10014", "10019", "10021"), ContentFilterError),
        "10907": ContextLengthError,
        "11200": PermissionDeniedError,
        "11201": PermissionDeniedError,
        **dict.fromkeys(("10007", "11202", "11203"), RateLimitError),
        **dict.fromkeys(("10008", "10012", "10110", "10222"), UpstreamUnavailableError),
    }

    def adjust_payload(self, payload: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
        if payload.get("tools"):
            payload["tool_calls_switch"] = True
        return payload

    def check_body(self, body: Any, headers: Mapping[str, str] | None = None) -> None:
        code = body.get("code") if isinstance(body, Mapping) else None
        if code not in (None, 0, "0") and not isinstance(body.get("error"), Mapping):
            error = {
                "error": {"code": str(code), "message": body.get("message")},
                "sid": body.get("sid"),
            }
            raise self.error_from_response(400, error, headers or {})
        super().check_body(body, headers)

    def request_id_of(self, body: Any, headers: Mapping[str, str] | None = None) -> str | None:
        if isinstance(body, Mapping) and isinstance(body.get("sid"), str):
            return body["sid"]
        return super().request_id_of(body, headers)
