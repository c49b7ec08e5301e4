"""Upstream connections end when nobody needs them: a client that leaves mid-stream (both
protocols, plain and replicated models), a closed generator (sync and async, both transports),
server shutdown. And the read timeout bounds silence, never a whole generation.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashscope.api_entities import aio_session

from langchain_chatchat import ChatOpenAICompatible, ChatQwen
from langchain_chatchat.server import create_app
from langchain_chatchat.testing import (
    BackgroundServer,
    DashScopeEmulator,
    OpenAICompatibleEmulator,
    Reply,
)
from tests.server.conftest import API_KEY, qwen_params

AUTH = {"Authorization": f"Bearer {API_KEY}"}
LONG = " ".join(f"word{i}" for i in range(40))
DISCONNECT_BUDGET = 1.0
"""Seconds from the client leaving to the upstream connection being closed."""


@pytest.fixture(scope="module")
def openai_upstream() -> Iterator[OpenAICompatibleEmulator]:
    with OpenAICompatibleEmulator() as emulator:
        yield emulator


def upstream_close_delay(emulator: Any, closed_at: float) -> float:
    """Seconds from `closed_at` until the emulator saw its latest request's client go away."""
    deadline = time.monotonic() + 5
    while (gone := emulator.requests[-1].disconnected_at) is None:
        assert time.monotonic() < deadline, "the upstream request was never closed"
        time.sleep(0.005)
    return gone - closed_at


def read_two_events_and_leave(url: str, body: dict[str, Any]) -> float:
    """Stream `body` to `url`, read two SSE data events, disconnect; when it left."""
    with (
        httpx.Client(headers=AUTH, timeout=10) as client,
        client.stream("POST", url, json=body) as response,
    ):
        assert response.status_code == 200
        events = 0
        for line in response.iter_lines():
            events += line.startswith("data:")
            if events == 2:
                break
    return time.monotonic()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {"model": "qwen-plus", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        ),
        ("/qwen-plus/stream", {"input": "hi"}),
    ],
    ids=["openai", "langserve"],
)
def test_client_leaving_mid_stream_closes_the_upstream_within_a_second(
    server_url, emulator, path, body
):
    emulator.enqueue(Reply(text=LONG, chunk_delay=2.0))  # the next chunk is 2 s away
    left = read_two_events_and_leave(server_url + path, body)
    assert upstream_close_delay(emulator, left) < DISCONNECT_BUDGET


def test_leaving_a_replicated_stream_closes_the_upstream_and_frees_the_slot(openai_upstream):
    openai_upstream.reset()
    openai_upstream.enqueue(Reply(text=LONG, chunk_delay=2.0))
    replica = {
        "url": openai_upstream.base_url,
        "params": {"model": "m", "api_key": openai_upstream.api_key, "max_retries": 0},
    }
    config = {
        "server": {"api_keys": [API_KEY]},
        "models": [{"name": "pair", "replicas": [replica, replica], "max_concurrency": 1}],
    }
    body = {"model": "pair", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with BackgroundServer(create_app(config)) as server:
        left = read_two_events_and_leave(f"{server.url}/v1/chat/completions", body)
        assert upstream_close_delay(openai_upstream, left) < DISCONNECT_BUDGET

        def released() -> bool:
            metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
            return (
                _value(metrics, "chatchat_replica_in_flight", "0:") == 0
                and _value(
                    metrics, "chatchat_upstream_requests_total", 'outcome="cancelled",replica="0:'
                )
                == 1
            )

        deadline = time.monotonic() + DISCONNECT_BUDGET
        while not released():
            assert time.monotonic() < deadline, "the replica's slot was not released"
            time.sleep(0.01)


def _value(metrics: str, name: str, label: str) -> float:
    (line,) = [m for m in metrics.splitlines() if m.startswith(name + "{") and label in m]
    return float(line.rsplit(" ", 1)[1])


def _qwen(emulator: DashScopeEmulator) -> ChatQwen:
    return ChatQwen(**qwen_params(emulator, "qwen-plus"))


def _openai(emulator: OpenAICompatibleEmulator) -> ChatOpenAICompatible:
    return ChatOpenAICompatible(
        model="m", api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0
    )


@pytest.mark.parametrize("transport", ["qwen", "openai"])
def test_closing_a_sync_stream_closes_the_upstream(emulator, openai_upstream, transport):
    upstream, model = _upstream_and_model(transport, emulator, openai_upstream)
    upstream.enqueue(Reply(text=LONG, chunk_delay=2.0))
    chunks = model.stream("hi")
    next(chunks)  # the next chunk is 2 s away
    chunks.close()
    assert upstream_close_delay(upstream, time.monotonic()) < DISCONNECT_BUDGET


@pytest.mark.parametrize("transport", ["qwen", "openai"])
async def test_closing_an_async_stream_closes_the_upstream(emulator, openai_upstream, transport):
    upstream, model = _upstream_and_model(transport, emulator, openai_upstream)
    upstream.enqueue(Reply(text=LONG, chunk_delay=2.0))
    chunks = model.astream("hi")
    await anext(chunks)  # the next chunk is 2 s away
    await chunks.aclose()
    closed = time.monotonic()
    assert await asyncio.to_thread(upstream_close_delay, upstream, closed) < DISCONNECT_BUDGET
    await model.worker.aclose()


def _upstream_and_model(
    transport: str, dashscope: DashScopeEmulator, openai_compatible: OpenAICompatibleEmulator
) -> tuple[Any, Any]:
    if transport == "qwen":
        return dashscope, _qwen(dashscope)
    openai_compatible.reset()
    return openai_compatible, _openai(openai_compatible)


# -- timeouts ---------------------------------------------------------------------------------------
def _stream(server_url: str, model: str) -> str:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{server_url}/v1/chat/completions", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 200
    return response.text


def test_a_generation_that_keeps_streaming_outlives_the_read_timeout(server_url, emulator):
    """qwen-slow's timeout is 0.5 s; this reply takes ~2 s, a chunk every 0.25 s."""
    emulator.enqueue(Reply(text="one two three four five six seven eight", chunk_delay=0.25))
    started = time.monotonic()
    text = _stream(server_url, "qwen-slow")
    assert time.monotonic() - started > 1.5
    assert "eight" in text and text.endswith("data: [DONE]\n\n")


def test_silence_longer_than_the_read_timeout_ends_the_stream_with_a_timeout(server_url, emulator):
    emulator.enqueue(Reply(text="one two three", chunk_delay=1.5))
    *_, last = _stream(server_url, "qwen-slow").strip().split("\n\n")
    assert json.loads(last.removeprefix("data: "))["error"]["type"] == "timeout_error"


# -- shutdown ---------------------------------------------------------------------------------------
def test_shutdown_closes_every_replicas_clients(emulator, openai_upstream):
    openai_upstream.reset()
    config = {
        "models": [
            {"name": "q", "provider": "qwen", "params": qwen_params(emulator, "qwen-plus")},
            {
                "name": "o",
                "replicas": [
                    {
                        "url": openai_upstream.base_url,
                        "params": {"model": "m", "api_key": openai_upstream.api_key},
                    }
                ],
            },
        ]
    }
    app = create_app(config)
    worker = app.state.registry.get("o").model.worker
    elsewhere = set(aio_session._aio_sessions.values())  # other servers' loops, still running
    with BackgroundServer(app) as server:
        for model in ("q", "o"):
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            assert httpx.post(f"{server.url}/v1/chat/completions", json=body).status_code == 200
        sessions = [
            *(s for s in aio_session._aio_sessions.values() if s not in elsewhere),
            *(session for session, _ in worker.transport._sessions.values()),
        ]
        assert len(sessions) == 2 and not any(session.closed for session in sessions)
    assert all(session.closed for session in sessions)
