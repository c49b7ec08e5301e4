"""Every error comes back in OpenAI's shape with the right status — and never with a traceback."""

from __future__ import annotations

import httpx
import openai
import pytest

from langchain_chatchat.testing import Fault, Reply
from tests.server.conftest import API_KEY, MAX_BODY, UPSTREAM_TIMEOUT

HI = [{"role": "user", "content": "hi"}]


def assert_openai_shape(body: dict) -> dict:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in error["message"]
    return error


def post(server_url: str, path: str, body: object, **headers: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_KEY}", **headers}
    return httpx.post(f"{server_url}{path}", json=body, headers=headers)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-key", f"Basic {API_KEY}", f"Bearer {API_KEY}x", "Bearer"]
)
def test_missing_or_wrong_api_key_is_401(server_url, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{server_url}/v1/models", headers=headers)
    assert response.status_code == 401
    assert assert_openai_shape(response.json())["type"] == "authentication_error"


def test_api_key_guards_langserve_routes_too(server_url):
    response = httpx.post(f"{server_url}/qwen-plus/invoke", json={"input": "hi"})
    assert response.status_code == 401


def test_sdk_sees_authentication_error(server_url):
    client = openai.OpenAI(base_url=f"{server_url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_probes_need_no_key(server_url, path):
    response = httpx.get(f"{server_url}{path}")
    assert response.status_code == 200


def test_ready_lists_the_models(server_url):
    assert "qwen-plus" in httpx.get(f"{server_url}/ready").json()["models"]


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nope", messages=HI)
    assert caught.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gpt-nope", input="x")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nope")


def test_model_of_the_wrong_kind_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="text-embedding-v3", messages=HI)
    assert "/v1/embeddings" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="qwen-plus", input="x")


def test_unknown_route_is_404_in_openai_shape(server_url):
    response = httpx.get(
        f"{server_url}/v1/nothing-here", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 404
    assert_openai_shape(response.json())


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "qwen-plus"}, "messages"),
        ({"model": "qwen-plus", "messages": []}, "messages"),
        ({"model": "qwen-plus", "messages": HI, "temperature": 5}, "temperature"),
        ({"model": "qwen-plus", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0]"),
        ({"messages": HI}, "model"),
        (
            {"model": "qwen-plus", "messages": HI, "tools": [{"type": "function"}]},
            "tools[0].function",
        ),
    ],
)
def test_validation_errors_are_400_not_422(server_url, body, param):
    response = post(server_url, "/v1/chat/completions", body)
    assert response.status_code == 400
    error = assert_openai_shape(response.json())
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_malformed_json_is_400(server_url):
    response = httpx.post(
        f"{server_url}/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert_openai_shape(response.json())


def test_bad_tool_call_arguments_in_history_are_400(client):
    messages = [
        *HI,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "x"},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qwen-plus", messages=messages)
    assert caught.value.body["param"] == "messages[1].tool_calls[0].function.arguments"


def test_provider_rejection_is_400(client, emulator):
    emulator.enqueue(
        Fault.http(400, "InvalidParameter", "Range of input length should be [1, 30720]")
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qwen-plus", messages=HI)
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["message"] == "Range of input length should be [1, 30720]"
    assert caught.value.body["code"] == "context_length_exceeded"  # OpenAI's code, for clients


def test_provider_codes_pass_through_when_openai_has_none(client, emulator):
    emulator.enqueue(
        Fault.http(400, "InvalidParameter", "Required parameter(s) missing or invalid")
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qwen-plus", messages=HI)
    assert caught.value.body["code"] == "InvalidParameter"


def test_body_too_large_is_413(server_url, client):
    big = "x" * (MAX_BODY + 1)
    response = post(
        server_url,
        "/v1/chat/completions",
        {"model": "qwen-plus", "messages": [{"role": "user", "content": big}]},
    )
    assert response.status_code == 413
    assert assert_openai_shape(response.json())["code"] == "request_too_large"
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": big}]
        )
    assert caught.value.status_code == 413


def test_chunked_body_too_large_is_413(server_url):
    def chunks():
        yield b'{"model": "qwen-plus", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}]}'

    response = httpx.post(
        f"{server_url}/v1/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert_openai_shape(response.json())


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_rate_limit_is_429_even_when_streaming(client, emulator, stream):
    emulator.enqueue(
        Fault.http(
            429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."
        )
    )
    with pytest.raises(openai.RateLimitError) as caught:
        result = client.chat.completions.create(model="qwen-plus", messages=HI, stream=stream)
        if stream:
            list(result)
    error = caught.value
    assert error.status_code == 429
    assert error.body == {
        "message": "Requests rate limit exceeded, please try again later.",
        "type": "rate_limit_error",
        "param": None,
        "code": "Throttling.RateQuota",
    }


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (
            Fault.http(
                500, "InternalError", "An internal error has occured, please try again later."
            ),
            502,
        ),
        (Fault.http(503, "ServiceUnavailable", "The service is temporarily unavailable."), 503),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_are_5xx(client, emulator, fault, status, stream):
    emulator.enqueue(fault)
    with pytest.raises(openai.InternalServerError) as caught:
        result = client.chat.completions.create(model="qwen-plus", messages=HI, stream=stream)
        if stream:
            list(result)
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "api_error"


def test_upstream_timeout_is_504(client, emulator):
    emulator.enqueue(Fault.hang(UPSTREAM_TIMEOUT * 4))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="qwen-slow", messages=HI)
    assert caught.value.status_code == 504
    assert caught.value.body["type"] == "timeout_error"


def test_error_after_streaming_began_is_one_sse_event(server_url, client, emulator):
    emulator.enqueue(
        Fault.stream_error(after_chunks=2, code="InternalError", message="Upstream broke mid-way.")
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="qwen-plus", messages=HI, stream=True):
            received.append(chunk)
    assert received and received[0].choices[0].delta.role == "assistant"
    assert "Upstream broke mid-way." in caught.value.message

    emulator.enqueue(
        Fault.stream_error(after_chunks=2, code="InternalError", message="Upstream broke mid-way.")
    )
    body = {"model": "qwen-plus", "messages": HI, "stream": True}
    with httpx.stream(
        "POST",
        f"{server_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line]
    assert events[-1].startswith('data: {"error": ')
    assert "[DONE]" not in events[-1]


def test_unexpected_errors_are_a_bare_500(server_url, client):
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="broken", messages=HI)
    assert caught.value.status_code == 500
    assert "secret" not in str(caught.value.body)
    response = post(server_url, "/broken/invoke", {"input": "hi"})
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text


def test_unexpected_error_mid_stream_hides_details(client):
    with pytest.raises(openai.APIError) as caught:
        list(client.chat.completions.create(model="broken", messages=HI, stream=True))
    assert "secret" not in caught.value.message
    assert caught.value.body["type"] == "api_error"


def test_request_id_is_echoed_or_made(server_url, client, emulator):
    emulator.enqueue(Reply(text="ok"))
    response = post(
        server_url,
        "/v1/chat/completions",
        {"model": "qwen-plus", "messages": HI},
        **{"X-Request-ID": "abc-123"},
    )
    assert response.headers["x-request-id"] == "abc-123"
    reply = client.chat.completions.create(model="qwen-plus", messages=HI)
    assert len(reply._request_id) == 32


@pytest.mark.parametrize("route", ["chat", "completions"])
def test_a_model_class_without_call_options_takes_only_the_standard_ones(client, route):
    """`broken` is another package's BaseChatModel: it declares no `call_options`, so a request
    may set only the OpenAI-standard options, never a field that could be one of its settings."""

    def create(**extra_body):
        if route == "chat":
            return client.chat.completions.create(
                model="broken", messages=HI, extra_body=extra_body
            )
        return client.completions.create(model="broken", prompt="hi", extra_body=extra_body)

    with pytest.raises(openai.BadRequestError) as caught:
        create(base_url="http://attacker.example", temperature=0.5)
    assert caught.value.body["message"] == "Unrecognized request argument supplied: base_url"
    assert caught.value.body["param"] == "base_url"
    with pytest.raises(openai.InternalServerError):  # past the check: the model's own failure
        create(top_p=0.5)
