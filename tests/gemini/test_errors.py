"""Every Gemini failure becomes a typed exception — never answer text, never a hang."""

from __future__ import annotations

import logging

import pytest
from google.genai import errors as genai_errors

from langchain_chatchat import (
    AuthenticationError,
    BadRequestError,
    ChatGemini,
    ContextLengthError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamTimeoutError,
)
from langchain_chatchat.testing import Fault, GeminiEmulator, Reply
from langchain_chatchat.workers.errors import UpstreamConnectionError, UpstreamServerError
from langchain_chatchat.workers.gemini import error_from_api


@pytest.fixture
def retrying(emulator) -> ChatGemini:
    return ChatGemini(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=2)


def test_wrong_key_is_an_authentication_error(emulator):
    llm = ChatGemini(api_key="wrong-key-000", base_url=emulator.base_url, max_retries=2)
    with pytest.raises(AuthenticationError) as caught:
        llm.invoke("hi")
    assert caught.value.code == "INVALID_ARGUMENT" and caught.value.status_code == 401
    assert len(emulator.requests) == 1  # auth errors are not retried


def test_missing_key_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="GEMINI_API_KEY"):
        ChatGemini()


def test_key_from_either_env_var(monkeypatch, emulator):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", emulator.api_key)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.base_url)
    assert ChatGemini().invoke("hi").content == "Hello! You said: hi"


def test_unknown_model_is_not_found(emulator):
    llm = ChatGemini(model="gemini-9", api_key=emulator.api_key, base_url=emulator.base_url)
    with pytest.raises(NotFoundError) as caught:
        llm.invoke("hi")
    assert caught.value.code == "NOT_FOUND" and "gemini-9" in caught.value.message


def test_bad_request_is_typed_and_not_retried(retrying, emulator):
    with pytest.raises(BadRequestError) as caught:
        retrying.invoke("hi", temperature=5)
    assert caught.value.code == "INVALID_ARGUMENT" and len(emulator.requests) == 1


def test_rate_limit_is_retried_then_succeeds(retrying, emulator):
    emulator.enqueue(
        Fault.http(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        Reply(text="finally"),
    )
    assert retrying.invoke("hi").content == "finally"
    assert len(emulator.requests) == 2


async def test_rate_limit_retry_async_stream(retrying, emulator):
    emulator.enqueue(Fault.http(503, "UNAVAILABLE", "The model is overloaded."), Reply(text="a b"))
    texts = [c.content async for c in retrying.astream("hi") if c.content]
    assert texts == ["a", " b"] and len(emulator.requests) == 2
    await retrying.worker.aclose()


def test_server_error_exhausts_retries(retrying, emulator):
    emulator.enqueue(*[Fault.http(500, "INTERNAL", "An internal error has occurred.")] * 3)
    with pytest.raises(UpstreamServerError) as caught:
        retrying.invoke("hi")
    assert caught.value.retryable and caught.value.code == "INTERNAL"
    assert len(emulator.requests) == 3


@pytest.mark.parametrize(
    ("status", "rpc", "error_class"),
    [
        (403, "PERMISSION_DENIED", PermissionDeniedError),
        (400, "FAILED_PRECONDITION", PermissionDeniedError),
        (401, "UNAUTHENTICATED", AuthenticationError),
        (504, "DEADLINE_EXCEEDED", UpstreamTimeoutError),
        (503, "UNAVAILABLE", UpstreamServerError),
    ],
)
def test_status_table(llm, emulator, status, rpc, error_class):
    emulator.enqueue(Fault.http(status, rpc, "upstream says no"))
    with pytest.raises(error_class) as caught:
        llm.invoke("hi")
    assert caught.value.code == rpc


def test_context_length(emulator):
    with GeminiEmulator(api_key=emulator.api_key, max_input_tokens=5) as small:
        llm = ChatGemini(api_key=small.api_key, base_url=small.base_url, max_retries=0)
        with pytest.raises(ContextLengthError, match="exceeds the maximum number of tokens"):
            llm.invoke("one two three four five six seven")


def test_retry_delay_from_retry_info():
    body = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}],
        }
    }
    error = error_from_api(genai_errors.ClientError(429, body))
    assert isinstance(error, RateLimitError) and error.retry_after == 37.0


@pytest.mark.parametrize("use_async", [False, True])
async def test_timeout_is_typed(emulator, use_async):
    llm = ChatGemini(
        api_key=emulator.api_key, base_url=emulator.base_url, timeout=0.5, max_retries=0
    )
    emulator.enqueue(Fault.hang(3))
    with pytest.raises(UpstreamTimeoutError):
        if use_async:
            await llm.ainvoke("hi")
        else:
            llm.invoke("hi")
    await llm.worker.aclose()


@pytest.mark.parametrize("use_async", [False, True])
async def test_timeout_is_per_read_not_total(emulator, use_async):
    """A stream slower in total than `timeout`, but never silent that long, completes."""
    llm = ChatGemini(
        api_key=emulator.api_key, base_url=emulator.base_url, timeout=0.6, max_retries=0
    )
    emulator.enqueue(Reply(text="one two three four five", chunk_delay=0.25))
    if use_async:
        texts = [c.content async for c in llm.astream("hi")]
    else:
        texts = [c.content for c in llm.stream("hi")]
    assert "".join(texts) == "one two three four five"
    await llm.worker.aclose()


@pytest.mark.parametrize("use_async", [False, True])
async def test_stream_dropped_midway_raises_after_the_partial_text(llm, emulator, use_async):
    emulator.enqueue(Reply(text="one two three four five", drop_after_chunks=2))
    received = []
    with pytest.raises(UpstreamConnectionError):
        if use_async:
            async for chunk in llm.astream("hi"):
                received.append(chunk.content)
        else:
            for chunk in llm.stream("hi"):
                received.append(chunk.content)
    assert "".join(received) == "one two"
    await llm.worker.aclose()


def test_in_stream_error_is_typed(llm, emulator):
    emulator.enqueue(Fault.stream_error(2, "UNAVAILABLE", "The model is overloaded.", status=503))
    received = []
    with pytest.raises(UpstreamServerError) as caught:
        for chunk in llm.stream("hi"):
            received.append(chunk.content)
    assert caught.value.code == "UNAVAILABLE"
    assert "".join(received) and all("overloaded" not in text for text in received)


def test_api_key_never_reaches_logs_reprs_or_errors(emulator, caplog):
    secret = "AIzaSy-planted-secret-0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    llm = ChatGemini(api_key=secret, base_url=emulator.base_url, max_retries=0)
    with pytest.raises(AuthenticationError) as caught:
        llm.invoke("hi")
    good = ChatGemini(api_key=emulator.api_key, base_url=emulator.base_url)
    good.invoke("hi")
    list(good.stream("hi"))
    captured = caplog.text + repr(llm) + str(llm) + str(caught.value) + repr(caught.value)
    captured += repr(llm.worker) + str(llm.model_dump()) + llm.model_dump_json()
    assert secret not in captured
    assert emulator.api_key not in caplog.text
