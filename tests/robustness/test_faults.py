"""Fault injection: what a client sees, exactly, when the upstream misbehaves.

A real server (uvicorn on 127.0.0.1) serves `openai_compatible` models whose upstream is the
OpenAI-compatible emulator (scripted with `Fault`/`Reply`) or, for byte-level faults the
emulator cannot produce (malformed SSE, broken JSON), a raw upstream scripted here. Every
outcome is asserted through the openai SDK — status, exception class, the error body — and,
for streams, on the wire: the chunks that were sent, then one `data: {"error": ...}` event and
the end of the stream (no `[DONE]`). Each test also checks how many requests reached the
upstream, so a retry that should not happen (or a lost one) fails too.
"""

from __future__ import annotations

import json
import socket
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from typing_extensions import Self

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, Fault, OpenAICompatibleEmulator, Reply
from langchain_chatchat.testing.server import TimedResponse
from tests.robustness.conftest import API_KEY, assert_openai_error

HI = [{"role": "user", "content": "hi"}]
TIMEOUT = 0.5  # the upstream timeout of the "gpt-short" model, seconds
_SSE = [("content-type", "text/event-stream")]


class RawUpstream:
    """An upstream answering each request with the next scripted raw response."""

    def __init__(self) -> None:
        self.script: deque[TimedResponse] = deque()
        self.requests = 0
        self._server = BackgroundServer(
            Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        )

    async def _chat(self, request: Request) -> TimedResponse:
        await request.body()
        self.requests += 1
        return self.script.popleft()

    def enqueue(
        self, status: int, headers: list[tuple[str, str]], *pieces: bytes, abort: bool = False
    ) -> None:
        self.script.append(
            TimedResponse(
                status,
                headers,
                [(0.0, piece) for piece in pieces],
                abort_after=len(pieces) if abort else None,
            )
        )

    @property
    def base_url(self) -> str:
        return f"{self._server.url}/v1"

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


def _chunk(content: str, finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "raw",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on exit: connections are refused


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[OpenAICompatibleEmulator, RawUpstream]]:
    with OpenAICompatibleEmulator("openai_compatible") as emulator, RawUpstream() as raw:
        yield emulator, raw


@pytest.fixture(scope="module")
def server_url(upstreams: tuple[OpenAICompatibleEmulator, RawUpstream]) -> Iterator[str]:
    emulator, raw = upstreams

    def model(name: str, base_url: str, **params: Any) -> dict[str, Any]:
        params = {
            "model": "gpt-4o-mini",
            "base_url": base_url,
            "api_key": emulator.api_key,
            "max_retries": 0,
            **params,
        }
        return {"name": name, "provider": "openai_compatible", "params": params}

    config = {
        "server": {"api_keys": [API_KEY]},
        "models": [
            model("gpt", emulator.base_url, timeout=10),
            model("gpt-short", emulator.base_url, timeout=TIMEOUT),
            model("gpt-retry", emulator.base_url, max_retries=2, timeout=10),
            model("raw", raw.base_url, timeout=10),
            model("nowhere", f"http://127.0.0.1:{_closed_port()}/v1", timeout=10),
        ],
    }
    with BackgroundServer(create_app(config)) as server:
        yield server.url


@pytest.fixture
def emulator(
    upstreams: tuple[OpenAICompatibleEmulator, RawUpstream],
) -> Iterator[OpenAICompatibleEmulator]:
    emulator = upstreams[0]
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def raw(upstreams: tuple[OpenAICompatibleEmulator, RawUpstream]) -> Iterator[RawUpstream]:
    raw = upstreams[1]
    raw.script.clear()
    raw.requests = 0
    yield raw
    assert not raw.script, "a scripted response was not used"


@pytest.fixture
def client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=API_KEY, max_retries=0, timeout=20)


def _error(caught: pytest.ExceptionInfo[openai.APIStatusError], status: int) -> dict[str, Any]:
    """The error's body, after checking the status and that the response is OpenAI-shaped."""
    assert caught.value.status_code == status
    return assert_openai_error(caught.value.response.json())


def _raw_stream(server_url: str, model: str) -> tuple[int, list[str]]:
    """(status, non-empty SSE lines) of a streamed request, read on the wire."""
    body = {"model": model, "messages": HI, "stream": True}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream(
        "POST", f"{server_url}/v1/chat/completions", json=body, headers=headers, timeout=20
    ) as response:
        return response.status_code, [line for line in response.iter_lines() if line]


# -- errors before any output: a normal HTTP error the client can act on -----------------------
@pytest.mark.parametrize("stream", [False, True])
def test_429_is_a_429_with_the_upstream_message_and_code(client, emulator, stream):
    emulator.enqueue(Fault.http(429, "rate_limit_exceeded", "Rate limit reached, slow down"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt", messages=HI, stream=stream)
    assert _error(caught, 429) == {
        "message": "Rate limit reached, slow down",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert len(emulator.requests) == 1  # max_retries=0: not retried


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_500_is_a_502_api_error(client, emulator, stream):
    emulator.enqueue(Fault.http(500, "server_error", "The upstream had an error"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt", messages=HI, stream=stream)
    error = _error(caught, 502)
    assert (error["type"], error["message"], error["code"]) == (
        "api_error",
        "The upstream had an error",
        "server_error",
    )
    assert len(emulator.requests) == 1


def test_upstream_503_keeps_its_status(client, emulator):
    emulator.enqueue(Fault.http(503, "overloaded", "Try again later"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt", messages=HI)
    assert _error(caught, 503)["type"] == "api_error"


@pytest.mark.parametrize("stream", [False, True])
def test_silent_upstream_is_a_504_in_bounded_time(client, emulator, stream):
    emulator.enqueue(Fault.hang(TIMEOUT * 10))
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-short", messages=HI, stream=stream)
    assert time.monotonic() - started < TIMEOUT * 6
    error = _error(caught, 504)
    assert error["type"] == "timeout_error"
    assert "did not answer in time" in error["message"]


def test_unreachable_upstream_is_a_502(client):
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="nowhere", messages=HI)
    error = _error(caught, 502)
    assert "connection failed" in error["message"]


def test_retryable_errors_are_retried_until_success(client, emulator):
    emulator.enqueue(
        Fault.http(429, "rate_limit_exceeded", "slow down"),
        Fault.http(500, "server_error", "boom"),
        Reply(text="Recovered."),
    )
    reply = client.chat.completions.create(model="gpt-retry", messages=HI)
    assert reply.choices[0].message.content == "Recovered."
    assert len(emulator.requests) == 3  # two failures, one success: nothing lost, nothing extra


def test_non_retryable_errors_are_not_retried(client, emulator):
    emulator.enqueue(Fault.http(400, "invalid_request_error", "Bad field 'x'"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-retry", messages=HI)
    assert _error(caught, 400)["message"] == "Bad field 'x'"
    assert len(emulator.requests) == 1


def test_connection_dropped_before_the_first_chunk_is_a_502(client, emulator):
    emulator.enqueue(Reply(text="never seen", drop_after_chunks=0))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt", messages=HI, stream=True)
    assert _error(caught, 502)["type"] == "api_error"


def test_body_cut_mid_json_is_a_502(client, emulator):
    emulator.enqueue(Reply(text="a complete answer that will be cut", drop_after_chunks=1))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt", messages=HI)
    assert _error(caught, 502)["type"] == "api_error"


def test_malformed_json_body_is_a_502(client, raw):
    raw.enqueue(200, [("content-type", "application/json")], b"{not json")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="raw", messages=HI)
    assert _error(caught, 502)["message"] == "openai_compatible sent a malformed response body"
    assert raw.requests == 1


def test_malformed_first_sse_event_is_a_502(client, raw):
    raw.enqueue(200, _SSE, b"data: {this is not json\n\n", b"data: [DONE]\n\n")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="raw", messages=HI, stream=True)
    assert _error(caught, 502)["message"] == "openai_compatible sent a malformed stream chunk"


# -- errors after output began: one in-stream error event, then the end ------------------------
def test_connection_dropped_mid_stream_ends_with_one_error_event(server_url, client, emulator):
    emulator.enqueue(Reply(text="one two three four five six", drop_after_chunks=3))
    received = []
    with pytest.raises(openai.APIError) as caught:
        received.extend(client.chat.completions.create(model="gpt", messages=HI, stream=True))
    assert received[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in received)  # the text sent so far
    assert caught.value.body["type"] == "api_error"

    emulator.enqueue(Reply(text="one two three four five six", drop_after_chunks=3))
    status, lines = _raw_stream(server_url, "gpt")
    assert status == 200
    assert all(line.startswith("data: ") for line in lines)
    *chunks, last = lines
    assert chunks and all(
        json.loads(line[6:])["object"] == "chat.completion.chunk" for line in chunks
    )
    error = assert_openai_error(json.loads(last[6:]))
    assert error["type"] == "api_error"
    assert "[DONE]" not in "".join(lines)


def test_provider_error_event_mid_stream_is_passed_on(server_url, client, emulator):
    emulator.enqueue(
        Fault.stream_error(after_chunks=2, code="server_error", message="Model crashed mid-way")
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        received.extend(client.chat.completions.create(model="gpt", messages=HI, stream=True))
    assert received
    assert caught.value.message == "Model crashed mid-way"
    assert caught.value.body == {
        "message": "Model crashed mid-way",
        "type": "api_error",
        "param": None,
        "code": "server_error",
    }


def test_malformed_sse_event_mid_stream_ends_with_one_error_event(server_url, raw):
    raw.enqueue(
        200,
        _SSE,
        _chunk("Hello"),
        _chunk(" there"),
        b"data: {broken\n\n",
        _chunk("never"),
        b"data: [DONE]\n\n",
    )
    status, lines = _raw_stream(server_url, "raw")
    assert status == 200
    contents = [json.loads(line[6:])["choices"][0]["delta"].get("content") for line in lines[:-1]]
    assert "".join(c or "" for c in contents) == "Hello there"
    assert assert_openai_error(json.loads(lines[-1][6:])) == {
        "message": "openai_compatible sent a malformed stream chunk",
        "type": "api_error",
        "param": None,
        "code": None,
    }
    assert raw.requests == 1  # nothing is retried once text reached the client


def test_stream_cut_without_finish_or_done_ends_with_one_error_event(server_url, raw):
    raw.enqueue(200, _SSE, _chunk("Hello"), _chunk(" there"), abort=True)
    status, lines = _raw_stream(server_url, "raw")
    assert status == 200
    error = assert_openai_error(json.loads(lines[-1][6:]))
    assert error["type"] == "api_error"
    assert "[DONE]" not in "".join(lines)


def test_stream_that_ends_cleanly_without_done_is_complete(server_url, raw):
    """A finish_reason is an end: servers that omit `[DONE]` are not an error."""
    raw.enqueue(200, _SSE, _chunk("Hi", None), _chunk("", "stop"))
    status, lines = _raw_stream(server_url, "raw")
    assert status == 200
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] == "stop"


def test_langserve_route_reports_upstream_429_in_openai_shape(server_url, emulator):
    emulator.enqueue(Fault.http(429, "rate_limit_exceeded", "slow down"))
    response = httpx.post(
        f"{server_url}/gpt/invoke",
        json={"input": "hi"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=20,
    )
    assert response.status_code == 429
    assert assert_openai_error(response.json())["type"] == "rate_limit_error"
