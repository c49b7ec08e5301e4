"""iFlytek Spark (讯飞星火) through its OpenAI-style HTTP API.

The legacy HMAC-signed websocket protocol is not implemented; the HTTP API covers the same
models (lite, generalv3 = Pro, pro-128k, generalv3.5 = Max, max-32k, 4.0Ultra).

Spark answers every request — errors included — with a body carrying `code` (0 on success),
`message` and `sid`; in-stream errors come the same way inside the SSE data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from langchain_chatchat.workers.base import MessageRules
from langchain_chatchat.workers.endpoint import Endpoint, ErrorFields
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    ErrorTable,
    PermissionDeniedError,
    RateLimitError,
    UpstreamServerError,
)
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleWorker,
    ResponseFormat,
    ToolChoiceMode,
)
from langchain_chatchat.workers.types import ChatRequest

DEFAULT_BASE_URL = "https://spark-api-open.xf-yun.com/v1"


SPARK_ERRORS = ErrorTable(
    {
        # Spark's error-code reference: 10013/10014/10019/10021 content audit, 10907 too many
        # tokens, 11200 not authorised, 11201 daily limit, 11202/11203 rate and concurrency
        # limits, 10007 busy with the previous request, 10008/10012/10110/10222 engine-side
        # failures. 10160/10161/10163 (malformed / undecodable / invalid request data) and 10313
        # (app_id does not match the key) are the platform's general codes.
        **dict.fromkeys(("10160", "10161", "10163"), BadRequestError),
        **dict.fromkeys(("10013", "10014", "10019", "10021"), ContentFilterError),
        "10907": ContextLengthError,
        "10313": AuthenticationError,
        "11200": PermissionDeniedError,
        "11201": PermissionDeniedError,
        **dict.fromkeys(("10007", "11202", "11203"), RateLimitError),
        **dict.fromkeys(("10008", "10012", "10110", "10222"), UpstreamServerError),
    }
)
"""iFlytek's codes, shared by Spark chat and Spark embeddings (one platform, one table)."""


def _code_error(body: Mapping[str, Any]) -> ErrorFields | None:
    """A non-zero `code` beside `message` and `sid` (unless an OpenAI-style error is present)."""
    code = body.get("code")
    if code in (None, 0, "0") or isinstance(body.get("error"), Mapping):
        return None
    return ErrorFields(code=str(code), message=body.get("message"))


SPARK = Endpoint(
    provider="spark",
    default_base_url=DEFAULT_BASE_URL,
    api_key_env="IFLYTEK_SPARK_API_PASSWORD",
    base_url_env="IFLYTEK_SPARK_BASE_URL",
    errors=SPARK_ERRORS,
    body_error=_code_error,
    request_id_keys=("sid", "request_id", "id"),
)


class SparkWorker(OpenAICompatibleWorker):
    """Bearer `APIPassword` (or `APIKey:APISecret`). Tools on Max / 4.0Ultra with "auto" choice
    only; text only; usage on the final chunk. Errors: `SPARK_ERRORS`.

    Tools need `tool_calls_switch: true` (www.xfyun.cn/doc/spark/HTTP调用文档.html, 请求参数):
    without it the model writes its tool call as JSON text in `content`."""

    endpoint: ClassVar[Endpoint] = SPARK
    message_rules: ClassVar[MessageRules] = MessageRules(images=False)
    include_usage_option: ClassVar[bool] = False
    tool_choices: ClassVar[frozenset[ToolChoiceMode]] = frozenset({"auto"})
    response_formats: ClassVar[frozenset[ResponseFormat]] = frozenset()

    def adjust_payload(self, payload: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
        if payload.get("tools"):
            payload["tool_calls_switch"] = True
        return payload
