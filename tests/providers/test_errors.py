"""Each provider's documented error codes, as its emulator sends them, become typed errors."""

from __future__ import annotations

import pytest

from langchain_chatchat.testing import Fault, Reply
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamServerError,
    UpstreamTimeoutError,
)

from .support import SPECS, chat_for, connection, running

# (provider, HTTP status, provider code, message, expected error)
DOCUMENTED = [
    ("openai_compatible", 429, "rate_limit_exceeded", "Rate limit reached", RateLimitError),
    (
        "openai_compatible",
        400,
        "context_length_exceeded",
        "This model's maximum context length is 8192 tokens",
        ContextLengthError,
    ),
    ("openai_compatible", 400, "content_filter", "The response was filtered", ContentFilterError),
    ("openai_compatible", 404, "model_not_found", "The model does not exist", NotFoundError),
    ("openai_compatible", 500, "server_error", "The server had an error", UpstreamServerError),
    (
        "azure",
        400,
        "content_filter",
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        ContentFilterError,
    ),
    (
        "azure",
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist.",
        NotFoundError,
    ),
    (
        "azure",
        400,
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens.",
        ContextLengthError,
    ),
    (
        "azure",
        429,
        "429",
        "Requests to the ChatCompletions_Create Operation have exceeded token rate limit.",
        RateLimitError,
    ),
    ("deepseek", 402, "invalid_request_error", "Insufficient Balance", PermissionDeniedError),
    ("deepseek", 422, "invalid_request_error", "Invalid Parameters", BadRequestError),
    (
        "deepseek",
        400,
        "invalid_request_error",
        "This model's maximum context length is 65536 tokens. However, you requested 70000 tokens.",
        ContextLengthError,
    ),
    ("deepseek", 429, "rate_limit_reached", "Rate Limit Reached", RateLimitError),
    ("deepseek", 503, "server_overloaded", "Server Overloaded", UpstreamServerError),
    (
        "moonshot",
        400,
        "content_filter",
        "The request was rejected because it was considered high risk",
        ContentFilterError,
    ),
    (
        "moonshot",
        400,
        "invalid_request_error",
        "Invalid request: Your request exceeded model token limit : 8192",
        ContextLengthError,
    ),
    (
        "moonshot",
        400,
        "invalid_request_error",
        "Invalid request: temperature out of range",
        BadRequestError,
    ),
    (
        "moonshot",
        429,
        "exceeded_current_quota_error",
        "Your account is suspended, please check your plan and billing details",
        PermissionDeniedError,
    ),
    (
        "moonshot",
        429,
        "engine_overloaded_error",
        "The engine is currently overloaded, please try again later",
        RateLimitError,
    ),
    (
        "moonshot",
        429,
        "rate_limit_reached_error",
        "Your account reached max request",
        RateLimitError,
    ),
    (
        "moonshot",
        404,
        "resource_not_found_error",
        "Not found the model or Permission denied",
        NotFoundError,
    ),
    ("zhipu", 429, "1113", "您的账户已欠费，请充值后重试。", PermissionDeniedError),
    ("zhipu", 400, "1211", "模型不存在，请检查模型代码。", NotFoundError),
    ("zhipu", 400, "1214", "messages 参数非法。请检查文档。", BadRequestError),
    ("zhipu", 400, "1261", "Prompt 超长", ContextLengthError),
    ("zhipu", 400, "1301", "系统检测到输入或生成内容可能包含不安全或敏感内容", ContentFilterError),
    ("zhipu", 429, "1302", "您当前使用该API的并发数过高，请降低并发", RateLimitError),
    ("zhipu", 500, "500", "Internal Error", UpstreamServerError),
    ("qianfan", 400, "tokens_too_long", "Prompt tokens too long", ContextLengthError),
    (
        "qianfan",
        400,
        "characters_too_long",
        "the max input characters is 20000",
        ContextLengthError,
    ),
    ("qianfan", 400, "malformed_json", "Invalid Argument", BadRequestError),
    ("qianfan", 401, "no_parameter_permission", "no parameter permission", PermissionDeniedError),
    ("qianfan", 429, "rpm_rate_limit_exceeded", "rpm rate limit exceeded", RateLimitError),
    ("qianfan", 429, "tpm_rate_limit_exceeded", "tpm rate limit exceeded", RateLimitError),
    (
        "ark",
        400,
        "SensitiveContentDetected.Violence",
        "The request failed because the input text may contain violence information.",
        ContentFilterError,
    ),
    (
        "ark",
        400,
        "InputTextSensitiveContentDetected",
        "The request failed because the input text may contain sensitive information.",
        ContentFilterError,
    ),
    (
        "ark",
        403,
        "AccountOverdueError",
        "The request failed because your account has an overdue balance.",
        PermissionDeniedError,
    ),
    (
        "ark",
        404,
        "InvalidEndpointOrModel.NotFound",
        "The model or endpoint ep-x does not exist or you do not have access to it.",
        NotFoundError,
    ),
    (
        "ark",
        429,
        "RateLimitExceeded.EndpointRPMExceeded",
        "The Requests Per Minute (RPM) limit of the associated endpoint for your account has been exceeded.",
        RateLimitError,
    ),
    (
        "ark",
        429,
        "ServerOverloaded",
        "The service is currently unable to handle additional requests due to server overload.",
        RateLimitError,
    ),
    ("minimax", 200, "1002", "rate limit", RateLimitError),
    ("minimax", 200, "1004", "not authorized", AuthenticationError),
    ("minimax", 200, "1008", "insufficient balance", PermissionDeniedError),
    ("minimax", 200, "1026", "input new_sensitive", ContentFilterError),
    ("minimax", 200, "1027", "output new_sensitive", ContentFilterError),
    ("minimax", 200, "1039", "token limit", RateLimitError),
    ("minimax", 200, "1041", "conn limit", RateLimitError),
    ("minimax", 200, "2045", "rate growth limit", RateLimitError),
    ("minimax", 200, "2056", "usage limit exceeded", PermissionDeniedError),
    ("minimax", 200, "1013", "internal error", UpstreamServerError),
    ("zhipu", 429, "1308", "已达到 5 小时的使用上限", PermissionDeniedError),
    ("zhipu", 429, "1310", "已达到每周/每月使用上限", PermissionDeniedError),
    ("baichuan", 429, "insufficient_quota", "insufficient balance", PermissionDeniedError),
    ("minimax", 200, "2013", "invalid params", BadRequestError),
    ("minimax", 200, "1001", "request timeout", UpstreamTimeoutError),
    ("baichuan", 429, "rate_limit_exceeded", "Rate limit exceeded", RateLimitError),
    ("baichuan", 400, "context_length_exceeded", "prompt tokens too long", ContextLengthError),
    ("spark", 200, "10013", "输入内容审核不通过，涉嫌违规，请重新调整输入内容", ContentFilterError),
    ("spark", 200, "10014", "输出内容涉及敏感信息，审核不通过", ContentFilterError),
    ("spark", 200, "10907", "token数量超过上限", ContextLengthError),
    (
        "spark",
        200,
        "11200",
        "授权错误：该appId没有相关功能的授权 或者 业务量超过限制",
        PermissionDeniedError,
    ),
    ("spark", 200, "11202", "授权错误：秒级流控超限", RateLimitError),
    ("spark", 200, "10012", "引擎内部错误", UpstreamServerError),
]


@pytest.fixture
def clean():
    for name in SPECS:
        running(name).reset()
    yield
    for name in SPECS:
        running(name).reset()


@pytest.mark.parametrize(
    ("provider", "status", "code", "message", "expected"), DOCUMENTED, ids=lambda v: str(v)[:40]
)
@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_documented_errors_are_typed(clean, provider, status, code, message, expected, streaming):
    llm = chat_for(provider)
    running(provider).enqueue(Fault.http(status, code, message))
    with pytest.raises(expected) as raised:
        list(llm.stream("hi")) if streaming else llm.invoke("hi")
    error = raised.value
    assert type(error) is expected
    assert error.provider == provider and error.code == code and message in error.message
    assert error.retryable is expected.retryable


@pytest.mark.parametrize("provider", sorted(SPECS))
def test_wrong_key_is_an_authentication_error(clean, provider):
    spec, emulator = SPECS[provider], running(provider)
    key = "sk-WRONG.0000" if provider == "zhipu" else "sk-WRONG-0000"
    llm = spec.chat(model=spec.model, **{**connection(emulator), "api_key": key, "max_retries": 0})
    with pytest.raises(AuthenticationError) as raised:
        llm.invoke("hi")
    assert "WRONG" not in str(raised.value), "the key never appears in the error"


RATE_LIMITS = {
    "openai_compatible": "rate_limit_exceeded",
    "azure": "429",
    "deepseek": "rate_limit_reached",
    "moonshot": "rate_limit_reached_error",
    "zhipu": "1302",
    "qianfan": "rpm_rate_limit_exceeded",
    "ark": "RateLimitExceeded.EndpointTPMExceeded",
    "minimax": "1002",
    "baichuan": "rate_limit_exceeded",
    "spark": "11202",
}


@pytest.mark.parametrize("provider", sorted(SPECS))
def test_rate_limits_are_retried(clean, provider):
    llm = chat_for(provider, max_retries=1)
    emulator = running(provider)
    emulator.enqueue(Fault.http(429, RATE_LIMITS[provider], "slow down"), Reply(text="ok"))
    assert llm.invoke("hi").content == "ok"
    assert len(emulator.requests) == 2


@pytest.mark.parametrize("provider", ["minimax", "spark", "zhipu", "openai_compatible"])
def test_in_stream_errors_in_the_providers_shape(clean, provider):
    code = {
        "minimax": "1027",
        "spark": "10014",
        "zhipu": "1301",
        "openai_compatible": "content_filter",
    }[provider]
    running(provider).enqueue(Fault.stream_error(2, code, "sensitive output", status=400))
    with pytest.raises(ContentFilterError):
        list(chat_for(provider).stream("hello there"))


def test_azure_reports_the_retry_after_header(clean):
    emulator = running("azure")
    emulator.enqueue(Fault.http(429, "429", "Please retry after 6 seconds."))
    with pytest.raises(RateLimitError) as raised:
        chat_for("azure").invoke("hi")
    assert raised.value.status_code == 429 and raised.value.retry_after == 6.0
