"""Per-provider profiles for the OpenAI-compatible emulator, written from each provider's API reference.

A `Profile` says where a provider's API lives, how it authenticates, what it rejects, how its
errors look on the wire and how its stream differs from OpenAI's. Sources (public references):

* OpenAI chat completions / embeddings / error codes (the `openai_compatible` baseline, also
  what vLLM, Ollama, Xinference, LocalAI and One-API implement);
* Azure OpenAI REST reference (deployments path, api-version, api-key, content filtering);
* DeepSeek API docs (error codes page; thinking mode: reasoning_content of tool-call turns must
  be passed back, or 400);
* Moonshot (Kimi) API docs (error types; usage inside the finishing choice when streaming);
* Zhipu BigModel docs (JWT auth for non-SDK users; business error codes 1000-1305; one stop
  word; tool_choice "auto" only; messages must include a user turn; embedding-3 ≤ 64 inputs);
* Baidu Qianfan v2 docs (bearer API key; error codes malformed_json, invalid_messages,
  tokens_too_long, rpm/tpm_rate_limit_exceeded, ...; embeddings ≤ 16 inputs, tao-8k 1);
* Volcengine Ark error-code reference (AuthenticationError, InvalidEndpointOrModel.NotFound,
  SensitiveContentDetected, RateLimitExceeded.*, ServerOverloaded);
* MiniMax chatcompletion_v2 and error-code reference (base_resp status codes; closing stream
  chunk repeats the whole message with the usage; embo-01 embeddings with GroupId, texts, type);
* Baichuan and iFlytek Spark HTTP docs (Spark: Bearer APIPassword, `code`/`message`/`sid` in
  every body, error codes 10013/10014/10907/11200-11203).

What a reference does not pin down is marked "unverified" where a profile emulates it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_chatchat.testing.images import ImageRules
from langchain_chatchat.testing.responder import message_text
from langchain_chatchat.testing.videos import VideoRules

__all__ = ["PROFILES", "ApiError", "Call", "Profile"]

UsageMode = Literal["include_usage", "final_chunk", "in_choice", "snapshot", "never"]


class ApiError(Exception):
    """A provider error before any response was sent: rendered by the profile's `error_body`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Call:
    """What a profile's checks see of a request."""

    body: dict[str, Any]
    headers: Mapping[str, str]
    query: Mapping[str, str]
    api_key: str
    deployment: str | None = None
    """Azure: the deployment named in the path (None on the v1 path)."""


ErrorBody = Callable[[int, str, str, str], tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class Profile:
    """One provider's wire protocol, as far as it differs from OpenAI's.

    * ``base_path``: the API root on the emulator (the client's ``base_url`` suffix); may hold a
      ``{deployment}`` segment (Azure);
    * ``authenticate``: True when the request's credentials match the emulator's API key;
      ``auth_error``: the (status, code, message) of the provider's answer otherwise;
    * ``error_body``: (status, code, message, request id) → (HTTP status, JSON body);
      ``stream_error``: the same for an error event inside a stream (defaults to the body);
    * ``usage_mode``: where a stream reports usage — a trailing ``choices: []`` chunk when
      ``stream_options.include_usage`` asks (OpenAI), on the finishing chunk always, inside the
      finishing choice (Moonshot), in a closing snapshot of the whole message (MiniMax), never;
    * ``envelope``: extra top-level fields of every body and chunk (request ids, status blocks);
    * ``check``: provider-specific request rules, raising `ApiError`;
    * ``thinking``: whether the request turns on the model's reasoning output;
    * ``extra_base_paths``: further API roots serving the same routes (Azure's v1 path).
    """

    name: str
    base_path: str
    authenticate: Callable[[Call], bool]
    auth_error: tuple[int, str, str]
    error_body: ErrorBody
    invalid_code: str = "invalid_request_error"
    """The code of the provider's generic "bad parameter" error."""
    stream_error: Callable[[str, str, str], dict[str, Any]] | None = None
    chat_path: str = "/chat/completions"
    embeddings_path: str | None = "/embeddings"
    usage_mode: UsageMode = "include_usage"
    envelope: Callable[[str], dict[str, Any]] = lambda request_id: {}
    tool_choices: frozenset[str] = frozenset({"auto", "none", "required", "named"})
    response_formats: frozenset[str] = frozenset({"json_object", "json_schema"})
    json_word_required: bool = False
    max_stop: int | None = None
    check: Callable[[Call], None] = lambda call: None
    thinking: Callable[[dict[str, Any]], bool] = lambda body: _enable_thinking(body)
    reasoning_key: str = "reasoning_content"
    tool_call_index: bool = True
    """False: streamed tool-call pieces carry no `index` (seen from some local servers)."""
    rate_limit_headers: Mapping[str, str] = field(default_factory=dict)
    """Headers sent with 429 answers (Azure: retry-after, retry-after-ms)."""
    ignore_stream: bool = False
    """True: answer `stream: true` with a plain JSON completion (seen from some local servers)."""
    sse_done: bool = True
    prompt_filter_chunk: bool = False
    embedding_style: Literal["openai", "minimax"] = "openai"
    embedding_batch_limits: Mapping[str, int] = field(default_factory=dict)
    embedding_batch_default: int = 2048
    embedding_dimension: int = 1024
    extra_base_paths: tuple[str, ...] = ()
    embedding_text_limits: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)
    """Per-text (characters, tokens) limits by embedding model; tokens as the emulator counts."""
    embedding_too_long: tuple[str, str, str] = ("", "", "")
    """(code when characters, code when tokens, message) of the per-text limit error."""
    embedding_request_tokens: Mapping[str, int] = field(default_factory=dict)
    """Per-request token limits by embedding model (all texts together), answered like the
    per-text token limit."""
    cache_usage: Literal["details", "top_level", "deepseek"] = "details"
    """Where usage reports prompt tokens read from cache: `prompt_tokens_details.cached_tokens`
    (OpenAI), a top-level `cached_tokens` (Moonshot), or DeepSeek's `prompt_cache_hit_tokens` /
    `prompt_cache_miss_tokens` (api-docs.deepseek.com/guides/kv_cache)."""
    search_results: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda body: {}
    """Top-level fields a built-in web search adds to every body and chunk (Zhipu's
    `web_search`)."""
    tools_as_text: Callable[[dict[str, Any]], bool] = lambda body: False
    """True when this request's tool calls come back as JSON text in `content` (Spark without
    `tool_calls_switch`)."""
    images: ImageRules | None = None
    """The provider's image rules (None: image parts are refused as unsupported content)."""
    videos: VideoRules | None = None
    """The provider's `video_url` rules (None: video parts are refused as unsupported content)."""

    def batch_limit(self, model: str) -> int:
        return self.embedding_batch_limits.get(model, self.embedding_batch_default)


# -- authentication -------------------------------------------------------------------------------
def _bearer(call: Call) -> bool:
    return hmac.compare_digest(call.headers.get("authorization", ""), f"Bearer {call.api_key}")


def _open(call: Call) -> bool:
    return True


def _azure_auth(call: Call) -> bool:
    """`api-key: <key>` or an Entra ID bearer token (the emulator accepts its key as the token)."""
    return hmac.compare_digest(call.headers.get("api-key", ""), call.api_key) or _bearer(call)


def _zhipu_auth(call: Call) -> bool:
    """The plain `{id}.{secret}` key, or a JWT signed with the secret per Zhipu's docs."""
    token = call.headers.get("authorization", "").removeprefix("Bearer ")
    if hmac.compare_digest(token, call.api_key):
        return True
    key_id, _, secret = call.api_key.partition(".")
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        payload = json.loads(_unb64(payload_b64))
    except ValueError:
        return False
    expected = hmac.new(
        secret.encode(), f"{header_b64}.{payload_b64}".encode(), hashlib.sha256
    ).digest()
    if (
        header.get("alg") != "HS256"
        or header.get("sign_type") != "SIGN"
        or payload.get("api_key") != key_id
    ):
        return False
    if not hmac.compare_digest(_unb64(signature_b64), expected):
        return False
    if not isinstance(payload.get("exp"), int) or payload["exp"] <= time.time() * 1000:
        raise ApiError(401, "1003", "Authentication Token expired, please regenerate/obtain")
    return True


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _spark_auth(call: Call) -> bool:
    """Bearer APIPassword, or Bearer `APIKey:APISecret` (the emulator's key is either form)."""
    return _bearer(call)


# -- error bodies -----------------------------------------------------------------------------------
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


def _openai_error(
    status: int, code: str, message: str, request_id: str
) -> tuple[int, dict[str, Any]]:
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return status, {
        "error": {"message": message, "type": kind, "param": None, "code": code or None}
    }


def _azure_error(
    status: int, code: str, message: str, request_id: str
) -> tuple[int, dict[str, Any]]:
    error: dict[str, Any] = {"code": code or str(status), "message": message}
    if code == "content_filter":
        error.update(
            param="prompt", status=400, innererror={"code": "ResponsibleAIPolicyViolation"}
        )
    return status, {"error": error}


def _code_message(
    status: int, code: str, message: str, request_id: str
) -> tuple[int, dict[str, Any]]:
    """Zhipu: `{"error": {"code": "1214", "message": ...}}`."""
    return status, {"error": {"code": code, "message": message}}


def _typed_error(
    status: int, code: str, message: str, request_id: str
) -> tuple[int, dict[str, Any]]:
    """Moonshot: errors carry a `type` (the scripted code) and a message, no code."""
    return status, {"error": {"type": code, "message": message}}


def _qianfan_error(
    status: int, code: str, message: str, request_id: str
) -> tuple[int, dict[str, Any]]:
    kind = "rate_limit_exceeded" if status == 429 else "invalid_request_error"
    return status, {"error": {"code": code, "message": message, "type": kind}, "id": request_id}


_ARK_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
}


def _ark_error(status: int, code: str, message: str, request_id: str) -> tuple[int, dict[str, Any]]:
    kind = _ARK_TYPES.get(status, "InternalServiceError")
    return status, {
        "error": {
            "code": code,
            "message": f"{message} Request id: {request_id}",
            "param": "",
            "type": kind,
        }
    }


def _minimax_error(
    status: int, code: str, message: str, request_id: str
) -> tuple[int, dict[str, Any]]:
    """MiniMax reports failures with HTTP 200 and a non-zero base_resp.status_code."""
    return 200, {"id": request_id, "base_resp": {"status_code": _int(code), "status_msg": message}}


def _spark_error(
    status: int, code: str, message: str, request_id: str
) -> tuple[int, dict[str, Any]]:
    """Spark carries `code`/`message`/`sid` in every body; errors as HTTP 200 (unverified for
    auth failures)."""
    return 200, {"code": _int(code), "message": message, "sid": request_id}


def _int(code: str) -> int | str:
    return int(code) if code.lstrip("-").isdigit() else code


# -- request rules ------------------------------------------------------------------------------------
def _enable_thinking(body: Mapping[str, Any]) -> bool:
    """Qwen3-style switches that vLLM/SGLang servers take (top level or chat_template_kwargs)."""
    kwargs = body.get("chat_template_kwargs") or {}
    return bool(
        body.get("enable_thinking") or kwargs.get("enable_thinking") or kwargs.get("thinking")
    )


def _thinking_type(body: Mapping[str, Any]) -> bool:
    """Zhipu / Ark / DeepSeek: `thinking: {"type": "enabled"}`."""
    thinking = body.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("type") == "enabled"


def _deepseek_thinking(body: Mapping[str, Any]) -> bool:
    return body.get("model") == "deepseek-reasoner" or _thinking_type(body)


def _deepseek_check(call: Call) -> None:
    """Thinking mode: tool-call turns must bring their reasoning_content back (DeepSeek docs)."""
    if _deepseek_thinking(call.body) and _tool_turn_without_reasoning(call.body) is not None:
        raise ApiError(
            400,
            "invalid_request_error",
            "The `reasoning_content` in the thinking mode must be passed back to the API.",
        )


def _tool_turn_without_reasoning(body: Mapping[str, Any]) -> int | None:
    """The index of the first assistant tool-call message that lacks its reasoning_content."""
    for index, message in enumerate(body.get("messages") or []):
        if (
            message.get("role") == "assistant"
            and message.get("tool_calls")
            and not message.get("reasoning_content")
        ):
            return index
    return None


def _out_of_range(
    body: Mapping[str, Any],
    name: str,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> bool:
    value = body.get(name)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return (
        value < low or value > high or (open_low and value == low) or (open_high and value == high)
    )


def _is_forced(choice: Any) -> bool:
    return choice == "required" or isinstance(choice, Mapping)


def _deepseek_forced_tools(call: Call) -> None:
    """Thinking mode takes no forced tool_choice (api-docs.deepseek.com/guides/thinking_mode,
    tool calls in thinking mode; unverified message)."""
    if _deepseek_thinking(call.body) and _is_forced(call.body.get("tool_choice")):
        raise ApiError(
            400,
            "invalid_request_error",
            "tool_choice 'required' or a named function is not supported in thinking mode",
        )


def _deepseek_rules(call: Call) -> None:
    _deepseek_check(call)
    _deepseek_forced_tools(call)


_KIMI_SWITCHABLE_THINKING = re.compile(r"kimi-k(?:2\.[5-9]|[3-9])")


def _moonshot_thinking(body: Mapping[str, Any]) -> bool:
    """kimi-k2-thinking always thinks; kimi-k2.5+ think unless `thinking: {"type": "disabled"}`
    (platform.moonshot.cn/docs/guide/use-kimi-k2-thinking-model, kimi-k2.5 quickstart)."""
    model = str(body.get("model") or "")
    if model.startswith("kimi-k2-thinking"):
        return True
    if _KIMI_SWITCHABLE_THINKING.match(model):
        thinking = body.get("thinking")
        return not (isinstance(thinking, Mapping) and thinking.get("type") == "disabled")
    return False


def _moonshot_check(call: Call) -> None:
    """Thinking models need each assistant tool-call turn's reasoning_content back (the message
    is quoted from the live API in the provider-conformance issue)."""
    if not _moonshot_thinking(call.body):
        return
    index = _tool_turn_without_reasoning(call.body)
    if index is not None:
        raise ApiError(
            400,
            "invalid_request_error",
            "thinking is enabled but reasoning_content is missing in assistant tool call "
            f"message at index {index}",
        )


def _zhipu_web_search(body: Mapping[str, Any]) -> dict[str, Any]:
    """The web_search tool's results (docs.bigmodel.cn 网络搜索工具: top-level `web_search`, a
    list of {title, link, content, media, icon, refer}); one made-up page (unverified that it
    rides on every stream chunk)."""
    tools = body.get("tools") or []
    if not any(isinstance(t, Mapping) and t.get("type") == "web_search" for t in tools):
        return {}
    question = next(
        (message_text(m) for m in reversed(body.get("messages") or []) if m.get("role") == "user"),
        "",
    )
    page = {
        "title": f"About: {question.strip()[:60]}",
        "link": "https://example.com/search/1",
        "content": "A page the search found.",
        "media": "Example",
        "icon": "https://example.com/favicon.ico",
        "refer": "ref_1",
    }
    return {"web_search": [page]}


def _zhipu_check(call: Call) -> None:
    roles = {m.get("role") for m in call.body.get("messages") or []}
    if "user" not in roles:
        raise ApiError(400, "1214", "messages 参数非法。请检查文档。")
    # temperature [0, 1], top_p [0.01, 1] (docs.bigmodel.cn/api-reference, 对话补全); code 1210
    # "API 调用参数有误，请检查文档。" (docs.bigmodel.cn 错误码).
    if _out_of_range(call.body, "temperature", 0.0, 1.0) or _out_of_range(
        call.body, "top_p", 0.01, 1.0
    ):
        raise ApiError(400, "1210", "API 调用参数有误，请检查文档。")


def _qianfan_check(call: Call) -> None:
    _alternating_check(call)
    # ERNIE: temperature (0, 1], top_p [0, 1] (cloud.baidu.com/doc/qianfan-api/s/3m7of64lb;
    # message unverified).
    if str(call.body.get("model") or "").lower().startswith("ernie"):
        for name, open_low in (("temperature", True), ("top_p", False)):
            if _out_of_range(call.body, name, 0.0, 1.0, open_low=open_low):
                raise ApiError(400, "invalid_argument", f"the value of {name} is out of range")


def _minimax_check(call: Call) -> None:
    """chatcompletion_v2: temperature and top_p in (0, 1] (platform.minimaxi.com/document/
    ChatCompletion v2); 2013 "invalid params" (message tail unverified)."""
    for name in ("temperature", "top_p"):
        if _out_of_range(call.body, name, 0.0, 1.0, open_low=True):
            raise ApiError(400, "2013", f"invalid params, {name} must be in (0, 1]")


def _baichuan_check(call: Call) -> None:
    """temperature [0, 1], top_p [0, 1) (platform.baichuan-ai.com/docs/api; wording
    unverified)."""
    if _out_of_range(call.body, "temperature", 0.0, 1.0) or _out_of_range(
        call.body, "top_p", 0.0, 1.0, open_high=True
    ):
        raise ApiError(400, "invalid_request_error", "parameter temperature or top_p is invalid")


# tool_choice "required" / named: doubao-seed-1.6 and later only (volcengine.com/docs/82379/
# 1494384, tool_choice; message unverified).
_ARK_FORCED_TOOLS = re.compile(r"doubao-seed-(?:1[-.][6-9]|[2-9])")


def _ark_check(call: Call) -> None:
    model = str(call.body.get("model") or "")
    if _is_forced(call.body.get("tool_choice")) and not _ARK_FORCED_TOOLS.match(model):
        raise ApiError(
            400,
            "InvalidParameter",
            f"The parameter `tool_choice` specified in the request is not valid for model {model}",
        )


# OpenAI's reasoning models (o-series, gpt-5 except -chat): max_completion_tokens only, and only
# the default temperature/top_p (platform.openai.com/docs/guides/reasoning; messages as the API
# writes them, learn.microsoft.com/azure/ai-foundry/openai/how-to/reasoning).
_REASONING_MODELS = re.compile(r"o\d+(?:-|$)|gpt-5(?!-chat)")


def _reasoning_model_check(model: str, body: Mapping[str, Any]) -> None:
    if not _REASONING_MODELS.match(model):
        return
    if "max_tokens" in body:
        raise ApiError(
            400,
            "unsupported_parameter",
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
        )
    for name in ("temperature", "top_p"):
        if body.get(name) not in (None, 1):
            raise ApiError(
                400,
                "unsupported_value",
                f"Unsupported value: '{name}' does not support {body[name]} with this model. "
                "Only the default (1) value is supported.",
            )


def _openai_check(call: Call) -> None:
    _reasoning_model_check(str(call.body.get("model") or ""), call.body)


def _alternating_check(call: Call) -> None:
    """ERNIE: after an optional system turn, odd turns are the user's (or tool results), even
    turns the assistant's (several tool results in a row answer one assistant turn)."""
    expected, previous = "user", None
    for message in call.body.get("messages") or []:
        role = message.get("role")
        side = "user" if role == "tool" else role
        if role == "system" or (role == "tool" and previous == "tool"):
            continue
        if side != expected:
            raise ApiError(
                400,
                "invalid_messages",
                "the role of messages must alternate between user and assistant",
            )
        expected, previous = ("assistant" if side == "user" else "user"), role


def _azure_check(call: Call) -> None:
    """Dated deployments path: api-version required (404 otherwise); v1 path: none needed, the
    deployment is the body's `model` (learn.microsoft.com/azure/ai-foundry/openai/
    api-version-lifecycle)."""
    if call.deployment is not None and not call.query.get("api-version"):
        raise ApiError(404, "404", "Resource not found")
    _reasoning_model_check(call.deployment or str(call.body.get("model") or ""), call.body)


def _request_id(prefix: str) -> Callable[[str], dict[str, Any]]:
    return lambda request_id: {prefix: request_id}


# -- image rules ------------------------------------------------------------------------------------
# OpenAI chat completions vision guide and error reference: png/jpeg/gif/webp; images only in user
# messages ("Image URLs are only allowed for messages with role 'user', ..."); models without
# vision answer "Invalid content type. image_url is only supported by certain models.".
_OPENAI_IMAGE_ERRORS: dict[str, tuple[int, str, str]] = {
    "model": (
        400,
        "invalid_value",
        "Invalid content type. image_url is only supported by certain models.",
    ),
    "role": (400, "invalid_value", "{detail}"),
    "url": (400, "invalid_image_url", "Error while downloading {detail}."),
    "download": (400, "invalid_image_url", "Error while downloading: {detail}."),
    "decode": (
        400,
        "invalid_image_format",
        "The image data you provided does not represent a valid image ({detail}). Please check "
        "your input and try again with one of the supported image formats: "
        "['image/jpeg', 'image/png', 'image/gif', 'image/webp'].",
    ),
    "format": (
        400,
        "invalid_image_format",
        "You uploaded an unsupported image. Please make sure your image has of one the "
        "following formats: ['png', 'jpeg', 'gif', 'webp'].",
    ),
    "size": (400, "image_too_large", "Image too large: {detail}."),  # unverified wording
    "pixels": (400, "invalid_image", "Invalid image dimensions: {detail}."),  # unverified
    "inline": (400, "invalid_image_url", "{detail}"),
    "count": (400, "invalid_value", "Too many images: {detail}."),  # unverified
}


def _image_errors(code: str, message: str, **kinds: tuple[int, str, str]) -> dict:
    """A provider's image errors: one generic parameter error unless a kind is documented."""
    return {kind: kinds.get(kind, (400, code, message)) for kind in _OPENAI_IMAGE_ERRORS}


_OPENAI_IMAGES = ImageRules(errors=_OPENAI_IMAGE_ERRORS, audio_models=r"audio|omni")


# -- the profiles ------------------------------------------------------------------------------------
_OPENAI = Profile(
    name="openai_compatible",
    base_path="/v1",
    authenticate=_bearer,
    auth_error=(401, "invalid_api_key", "Incorrect API key provided."),
    error_body=_openai_error,
    json_word_required=True,
    images=_OPENAI_IMAGES,
    check=_openai_check,
)

PROFILES: dict[str, Profile] = {
    "openai_compatible": _OPENAI,
    "azure": Profile(
        name="azure",
        invalid_code="BadRequest",
        base_path="/openai/deployments/{deployment}",
        authenticate=_azure_auth,
        auth_error=(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. "
            "Make sure to provide a valid key for an active subscription and use a correct "
            "regional API endpoint for your resource.",
        ),
        error_body=_azure_error,
        json_word_required=True,
        check=_azure_check,
        extra_base_paths=("/openai/v1",),
        rate_limit_headers={"retry-after": "6", "retry-after-ms": "6000"},
        prompt_filter_chunk=True,
        images=_OPENAI_IMAGES,  # Azure OpenAI vision how-to: OpenAI's parts and limits
        embedding_dimension=1536,
    ),
    "deepseek": Profile(
        name="deepseek",
        base_path="",
        authenticate=_bearer,
        auth_error=(
            401,
            "invalid_request_error",
            "Authentication Fails, Your api key: ****-key is invalid",
        ),
        error_body=_openai_error,
        embeddings_path=None,
        response_formats=frozenset({"json_object"}),
        json_word_required=True,
        max_stop=16,
        check=_deepseek_rules,
        thinking=_deepseek_thinking,
        cache_usage="deepseek",
    ),
    "moonshot": Profile(
        name="moonshot",
        base_path="/v1",
        authenticate=_bearer,
        auth_error=(401, "invalid_authentication_error", "Invalid Authentication"),
        error_body=_typed_error,
        embeddings_path=None,
        usage_mode="in_choice",
        tool_choices=frozenset({"auto", "none"}),
        response_formats=frozenset({"json_object"}),
        check=_moonshot_check,
        thinking=_moonshot_thinking,
        cache_usage="top_level",
        # "Use the Kimi Vision Model": vision-preview / kimi-latest / kimi-k2.5+, png/jpeg/webp/gif
        # as base64 data URLs; URL images are refused ("unsupported image url", quoted in
        # OpenHands issue #3219).
        images=ImageRules(
            errors=_image_errors(
                "invalid_request_error",
                "Invalid request: {detail}",
                url=(400, "invalid_request_error", "Invalid request: unsupported image url"),
            ),
            models=r"vision|^kimi-latest|^kimi-k2\.[5-9]|^kimi-k[3-9]",
            urls=False,
        ),
        # Same guide, videos (kimi-k2.5+): `video_url` with a base64 data URL or an uploaded
        # file (`ms://<file-id>`, not emulated); mp4, mpeg, mov, avi, x-flv, mpg, webm, wmv,
        # 3gpp. http(s) URLs are refused like image URLs, and the size limit is the file
        # upload's 100 MB (both unverified for video).
        videos=VideoRules(
            errors=_image_errors(
                "invalid_request_error",
                "Invalid request: {detail}",
                url=(400, "invalid_request_error", "Invalid request: unsupported video url"),
            ),
            models=r"^kimi-k2\.[5-9]|^kimi-k[3-9]",
            containers=frozenset({"mp4", "mpeg", "mov", "avi", "flv", "webm", "wmv", "3gp"}),
            max_bytes=100 * 1024 * 1024,
            urls=False,
        ),
    ),
    "zhipu": Profile(
        name="zhipu",
        invalid_code="1214",
        base_path="/api/paas/v4",
        authenticate=_zhipu_auth,
        auth_error=(401, "1002", "Authorization Token非法，请确认Authorization Token正确传递。"),
        error_body=_code_message,
        usage_mode="final_chunk",
        envelope=_request_id("request_id"),
        tool_choices=frozenset({"auto"}),
        response_formats=frozenset({"json_object"}),
        max_stop=1,
        check=_zhipu_check,
        search_results=_zhipu_web_search,
        thinking=_thinking_type,
        # GLM-4V docs: jpg/png/jpeg, at most 5 MB and 6000x6000 pixels per image; the official
        # SDKs send bare base64 (the data-URL prefix stripped). Error code 1210 (parameter error)
        # for every image problem is unverified.
        images=ImageRules(
            errors=_image_errors("1210", "图片输入格式/解析错误: {detail}"),
            models=r"^glm-[\d.]+v",
            formats=frozenset({"png", "jpeg"}),
            max_bytes=5 * 1024 * 1024,
            max_side=6000,
            inline="base64",
        ),
        # GLM-4V docs, video understanding (glm-4v-plus, GLM-4.xV): `video_url` by URL, mp4,
        # at most 20 MB and 30 s (glm-4v-plus; the stricter of the family's limits). Inline
        # video is documented for no model (refused, unverified), as is error code 1210.
        videos=VideoRules(
            errors=_image_errors("1210", "视频输入格式/解析错误: {detail}"),
            models=r"^glm-4v-plus|^glm-4\.\d+v",
            containers=frozenset({"mp4"}),
            max_bytes=20 * 1024 * 1024,
            max_seconds=30,
            inline=False,
        ),
        embedding_batch_limits={"embedding-3": 64, "embedding-2": 16},
        # docs.bigmodel.cn/api-reference 文本嵌入 (message unverified)
        embedding_text_limits={"embedding-3": (None, 3072), "embedding-2": (None, 512)},
        embedding_too_long=("1214", "1214", "input 长度超过模型限制"),
        # docs.bigmodel.cn/api-reference 文本嵌入: embedding-2 takes "8K" tokens per request;
        # read as 8000, the stricter reading (unverified, as is the message: the per-text one)
        embedding_request_tokens={"embedding-2": 8000},
        embedding_batch_default=64,
        embedding_dimension=2048,
    ),
    "qianfan": Profile(
        name="qianfan",
        invalid_code="invalid_argument",
        base_path="/v2",
        authenticate=_bearer,
        auth_error=(401, "invalid_iam_token", "IAM Certification failed"),
        error_body=_qianfan_error,
        max_stop=4,
        check=_qianfan_check,
        images=ImageRules(  # VL models only; formats and size unverified (strictest set)
            errors=_image_errors("invalid_argument", "invalid image: {detail}"),
            models=r"(^|[-_])vl([-_.\d]|$)|vision|^ernie-5",
            formats=frozenset({"png", "jpeg"}),
            max_bytes=10 * 1024 * 1024,
        ),
        embedding_batch_limits={"tao-8k": 1},
        # cloud.baidu.com/doc/qianfan-api/s/Fm7u3ropn; codes from the v2 error-code page
        embedding_text_limits={
            "embedding-v1": (1000, 384),
            "bge-large-zh": (2000, 512),
            "bge-large-en": (2000, 512),
            "tao-8k": (28000, 8192),
        },
        embedding_too_long=(
            "characters_too_long",
            "tokens_too_long",
            "input text is too long",
        ),
        embedding_batch_default=16,
        embedding_dimension=384,
    ),
    "ark": Profile(
        name="ark",
        invalid_code="InvalidParameter",
        base_path="/api/v3",
        authenticate=_bearer,
        auth_error=(
            401,
            "AuthenticationError",
            "The API key or AK/SK in the request is missing or invalid.",
        ),
        error_body=_ark_error,
        check=_ark_check,
        thinking=_thinking_type,
        # Ark visual understanding guide: vision and seed-1.6+ models; sides over 14 px, at most
        # 10 MB and 36 M pixels (unverified); InvalidParameter for a bad image.
        images=ImageRules(
            errors=_image_errors(
                "InvalidParameter", "The parameter `image_url` is invalid: {detail}"
            ),
            models=r"vision|seed-1[-.][68]|seed-[2-9]|^ep-",
            formats=frozenset({"png", "jpeg", "gif", "webp", "bmp", "tiff", "heic"}),
            max_bytes=10 * 1024 * 1024,
            min_side=14,
            max_pixels=36_000_000,
        ),
        # Ark video understanding guide (doubao-seed-1.6+): `video_url` as a URL or a base64
        # data URL; mp4, avi, mov; at most 50 MB (unverified), InvalidParameter otherwise.
        videos=VideoRules(
            errors=_image_errors(
                "InvalidParameter", "The parameter `video_url` is invalid: {detail}"
            ),
            models=r"seed-1[-.][68]|seed-[2-9]|^ep-",
            containers=frozenset({"mp4", "avi", "mov"}),
            max_bytes=50 * 1024 * 1024,
        ),
        embedding_batch_default=256,
        embedding_dimension=2560,
        # volcengine.com/docs/82379/1521766 (message unverified)
        embedding_text_limits={
            name: (None, 4096)
            for name in (
                "doubao-embedding",
                "doubao-embedding-text-240515",
                "doubao-embedding-text-240715",
            )
        },
        embedding_too_long=(
            "InvalidParameter",
            "InvalidParameter",
            "The input text exceeds the maximum length of the model",
        ),
    ),
    "minimax": Profile(
        name="minimax",
        invalid_code="2013",
        base_path="/v1",
        chat_path="/text/chatcompletion_v2",
        authenticate=_bearer,
        auth_error=(
            401,
            "1004",
            "login fail: Please carry the API secret key in the 'Authorization' field of the request header",
        ),
        error_body=_minimax_error,
        stream_error=lambda code, message, rid: _minimax_error(200, code, message, rid)[1],
        usage_mode="snapshot",
        envelope=lambda rid: {"base_resp": {"status_code": 0, "status_msg": ""}},
        tool_choices=frozenset({"auto", "none"}),
        response_formats=frozenset({"json_schema"}),
        check=_minimax_check,
        images=ImageRules(  # MiniMax-VL-01 only (chatcompletion_v2 reference)
            errors=_image_errors("2013", "invalid params, {detail}"),
            models=r"-vl-",
        ),
        sse_done=False,  # unverified: the closing snapshot ends the stream
        embedding_style="minimax",
        embedding_batch_default=16,  # unverified
        embedding_dimension=1536,
    ),
    "baichuan": Profile(
        name="baichuan",
        base_path="/v1",
        authenticate=_bearer,
        auth_error=(401, "invalid_api_key", "Invalid API key"),  # unverified wording
        error_body=_openai_error,
        usage_mode="final_chunk",
        tool_choices=frozenset({"auto"}),
        response_formats=frozenset(),
        check=_baichuan_check,
        embedding_batch_default=16,
    ),
    "spark": Profile(
        name="spark",
        invalid_code="10005",
        base_path="/v1",
        authenticate=_spark_auth,
        auth_error=(401, "11200", "AppIdNoAuthError:(11200)auth no license"),
        error_body=_spark_error,
        stream_error=lambda code, message, rid: _spark_error(200, code, message, rid)[1],
        usage_mode="final_chunk",
        envelope=lambda rid: {"code": 0, "message": "Success", "sid": rid},
        embeddings_path=None,
        tool_choices=frozenset({"auto"}),
        response_formats=frozenset(),
        # Tool calls come back as tool_calls only with `tool_calls_switch: true`
        # (www.xfyun.cn/doc/spark/HTTP调用文档.html); otherwise as JSON text in content.
        tools_as_text=lambda body: (
            bool(body.get("tools")) and body.get("tool_calls_switch") is not True
        ),
    ),
}


def json_word_missing(body: Mapping[str, Any]) -> bool:
    """OpenAI's (and DeepSeek's) rule for JSON mode: some message must mention "json"."""
    return "json" not in " ".join(message_text(m) for m in body.get("messages") or []).lower()
