"""Every DashScope failure becomes a typed exception — never answer text, never a hang."""

from __future__ import annotations

import logging

import pytest

from langchain_chatchat import (
    AuthenticationError,
    BadRequestError,
    ChatQwen,
    ContentFilterError,
    ContextLengthError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from langchain_chatchat.testing import Fault, Reply


@pytest.fixture
def retrying(emulator) -> ChatQwen:
    return ChatQwen(
        model="qwen-plus", api_key=emulator.api_key, base_url=emulator.base_url, max_retries=2
    )


def test_wrong_key_is_an_authentication_error(emulator):
    llm = ChatQwen(model="qwen-plus", api_key="sk-wrong-key-000", base_url=emulator.base_url)
    with pytest.raises(AuthenticationError) as caught:
        llm.invoke("hi")
    assert caught.value.code == "InvalidApiKey" and caught.value.status_code == 401
    assert caught.value.request_id
    assert len(emulator.requests) == 1  # auth errors are not retried


def test_missing_key_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="DASHSCOPE_API_KEY"):
        ChatQwen(model="qwen-plus")


def test_bad_request_is_typed_and_not_retried(retrying, emulator):
    emulator.enqueue(
        Fault.http(400, "InvalidParameter", "Required parameter(s) missing or invalid")
    )
    with pytest.raises(BadRequestError) as caught:
        retrying.invoke("hi")
    assert caught.value.code == "InvalidParameter" and len(emulator.requests) == 1


def test_rate_limit_is_retried_then_succeeds(retrying, emulator):
    emulator.enqueue(
        Fault.http(429, "Throttling.RateQuota", "Requests rate limit exceeded"),
        Reply(text="finally"),
    )
    assert retrying.invoke("hi").content == "finally"
    assert len(emulator.requests) == 2


async def test_rate_limit_retry_async_stream(retrying, emulator):
    emulator.enqueue(
        Fault.http(429, "Throttling", "Requests throttling triggered"), Reply(text="a b")
    )
    texts = [c.content async for c in retrying.astream("hi") if c.content]
    assert texts == ["a", " b"] and len(emulator.requests) == 2


def test_server_error_exhausts_retries(retrying, emulator):
    emulator.enqueue(*[Fault.http(500, "InternalError", "An internal error has occured")] * 3)
    with pytest.raises(UpstreamUnavailableError) as caught:
        retrying.invoke("hi")
    assert caught.value.retryable and caught.value.code == "InternalError"
    assert len(emulator.requests) == 3


def test_content_filter_and_context_length(llm, emulator):
    emulator.enqueue(
        Fault.http(400, "DataInspectionFailed", "Input data may contain inappropriate content.")
    )
    with pytest.raises(ContentFilterError):
        llm.invoke("hi")
    emulator.enqueue(
        Fault.http(400, "InvalidParameter", "Range of input length should be [1, 30720]")
    )
    with pytest.raises(ContextLengthError):
        llm.invoke("hi")


def test_timeout_is_typed(emulator):
    llm = ChatQwen(
        model="qwen-plus",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        timeout=1,
        max_retries=0,
    )
    emulator.enqueue(Fault.hang(3))
    with pytest.raises(UpstreamTimeoutError):
        llm.invoke("hi")


async def test_timeout_is_typed_async(emulator):
    llm = ChatQwen(
        model="qwen-plus",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        timeout=1,
        max_retries=0,
    )
    emulator.enqueue(Fault.hang(3))
    with pytest.raises(UpstreamTimeoutError):
        await llm.ainvoke("hi")


@pytest.mark.parametrize("use_async", [False, True])
async def test_stream_dropped_midway_raises_after_the_partial_text(llm, emulator, use_async):
    emulator.enqueue(Reply(text="one two three four five", drop_after_chunks=2))
    received = []
    with pytest.raises(UpstreamUnavailableError):
        if use_async:
            async for chunk in llm.astream("hi"):
                received.append(chunk.content)
        else:
            for chunk in llm.stream("hi"):
                received.append(chunk.content)
    assert "".join(received) == "one two"


def test_in_stream_error_event_is_typed(llm, emulator):
    emulator.enqueue(
        Fault.stream_error(
            after_chunks=2,
            code="DataInspectionFailed",
            message="Output data may contain inappropriate content.",
            status=400,
        )
    )
    received = []
    with pytest.raises(ContentFilterError):
        for chunk in llm.stream("hi"):
            received.append(chunk.content)
    assert (
        received
    )  # the text before the error was delivered, and the error was not appended as text
    assert all("inappropriate" not in text for text in received)


def test_api_key_never_reaches_logs_reprs_or_errors(emulator, caplog):
    secret = "sk-planted-secret-0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    llm = ChatQwen(model="qwen-plus", api_key=secret, base_url=emulator.base_url, max_retries=0)
    with pytest.raises(AuthenticationError) as caught:
        llm.invoke("hi")
    good = ChatQwen(model="qwen-plus", api_key=emulator.api_key, base_url=emulator.base_url)
    good.invoke("hi")
    list(good.stream("hi"))
    captured = (
        caplog.text
        + repr(llm)
        + str(llm)
        + str(caught.value)
        + repr(caught.value)
        + repr(llm.worker)
    )
    captured += str(llm.model_dump()) + llm.model_dump_json()
    assert secret not in captured
    assert emulator.api_key not in caplog.text
