"""LangServe's /invoke and /stream take the same direct path as /v1 when nothing observes the
call (LangServe's own event aggregator is dropped: its events are never returned here), while
stream_events and stream_log still see every event, through a real RemoteRunnable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langserve import RemoteRunnable

from langchain_chatchat.server.app import create_app
from langchain_chatchat.testing import BackgroundServer, OpenAICompatibleEmulator, Reply
from tests.robustness.test_fast_path import langchain_path  # noqa: F401 - a fixture


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAICompatibleEmulator]:
    with OpenAICompatibleEmulator("openai_compatible") as emulator:
        yield emulator


@pytest.fixture(scope="module")
def url(upstream: OpenAICompatibleEmulator) -> Iterator[str]:
    params = {
        "model": "gpt-4o-mini",
        "base_url": upstream.base_url,
        "api_key": upstream.api_key,
        "max_retries": 0,
    }
    app = create_app({"models": [{"name": "m", "provider": "openai_compatible", "params": params}]})
    with BackgroundServer(app) as server:
        yield server.url


async def test_invoke_and_stream_go_direct(url, upstream, langchain_path):  # noqa: F811
    upstream.enqueue(Reply(text="invoked"), Reply(text="streamed"))
    remote = RemoteRunnable(f"{url}/m")
    assert (await remote.ainvoke("hi")).content == "invoked"
    assert "".join([chunk.content async for chunk in remote.astream("hi")]) == "streamed"
    assert langchain_path == []


async def test_stream_events_still_see_the_model_run(url, upstream, langchain_path):  # noqa: F811
    upstream.enqueue(Reply(text="observed"))
    remote = RemoteRunnable(f"{url}/m")
    events = [event async for event in remote.astream_events("hi", version="v2")]
    streamed = [e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(streamed) == "observed"
    assert langchain_path == ["_astream"]
