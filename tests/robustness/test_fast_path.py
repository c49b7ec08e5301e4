"""The dispatcher's direct path: taken when nothing listens, never when something would.

`ChatDispatcher` calls a replica's worker directly (server/direct.py) only when LangChain would
attach no handler to the call. These tests fail if a user callback, a tracing context or
LangSmith tracing would be skipped, and prove the direct path is taken (LangChain's generation
hooks are not called) when nothing listens — with the same messages either way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.globals import set_debug, set_llm_cache
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import Runnable
from langchain_core.tracers.context import collect_runs
from langchain_core.tracers.langchain import wait_for_all_tracers

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.server.config import load_config
from langchain_chatchat.server.registry import ModelRegistry
from langchain_chatchat.testing import OpenAICompatibleEmulator, Reply

HI = [HumanMessage("hi")]


class Recorder(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.ends = 0

    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)

    async def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        self.ends += 1


@pytest.fixture(scope="module")
def emulator() -> Iterator[OpenAICompatibleEmulator]:
    with OpenAICompatibleEmulator("openai_compatible") as emulator:
        yield emulator


@pytest.fixture
def served(emulator) -> Any:
    emulator.reset()
    params = {
        "model": "gpt-4o-mini",
        "base_url": emulator.base_url,
        "api_key": emulator.api_key,
        "max_retries": 0,
    }
    config = load_config(
        {"models": [{"name": "m", "provider": "openai_compatible", "params": params}]}
    )
    return ModelRegistry.from_config(config).get("m")


@pytest.fixture
def dispatcher(served) -> Runnable:
    return served.runnable


@pytest.fixture
def langchain_path(monkeypatch) -> list[str]:
    """Names of LangChain's generation hooks called on our chat models (empty: direct path)."""
    calls: list[str] = []
    for hook in ("_agenerate", "_astream"):
        original = getattr(ChatchatChatModel, hook)

        def spy(self, *args: Any, _original=original, _hook=hook, **kwargs: Any) -> Any:
            calls.append(_hook)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ChatchatChatModel, hook, spy)
    return calls


async def collect(stream) -> list[AIMessageChunk]:
    return [chunk async for chunk in stream]


# -- the direct path is taken when nothing listens ----------------------------------------------
async def test_nothing_listening_takes_the_direct_path(dispatcher, emulator, langchain_path):
    emulator.enqueue(Reply(text="direct"), Reply(text="streamed"))
    reply = await dispatcher.ainvoke(HI)
    chunks = await collect(dispatcher.astream(HI))
    assert reply.content == "direct"
    assert "".join(chunk.content for chunk in chunks) == "streamed"
    assert langchain_path == []
    assert len(emulator.requests) == 2


async def test_bound_tools_still_go_direct_and_reach_the_provider(served, emulator, langchain_path):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    emulator.enqueue(Reply(text="ok"))
    await served.bind_tools([tool]).ainvoke(HI)
    assert langchain_path == []
    assert emulator.requests[-1].body["tools"][0]["function"]["name"] == "f"


# -- ... and never when something would observe the call ----------------------------------------
async def test_a_user_callback_sees_every_call(dispatcher, emulator, langchain_path):
    emulator.enqueue(Reply(text="one"), Reply(text="a b c"))
    recorder = Recorder()
    await dispatcher.ainvoke(HI, {"callbacks": [recorder]})
    await collect(dispatcher.astream(HI, {"callbacks": [recorder]}))
    assert recorder.ends == 2
    assert "".join(recorder.tokens) == "a b c"
    assert langchain_path == ["_agenerate", "_astream"]


async def test_callbacks_on_the_model_and_sync_handlers_count(served, emulator, langchain_path):
    class SyncHandler(BaseCallbackHandler):
        ended = 0

        def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
            SyncHandler.ended += 1

    model = served.model
    model.callbacks = [SyncHandler()]
    try:
        emulator.enqueue(Reply(text="x"))
        await served.runnable.ainvoke(HI)
    finally:
        model.callbacks = None
    assert SyncHandler.ended == 1 and langchain_path == ["_agenerate"]


async def test_a_tracing_context_records_the_run(dispatcher, emulator, langchain_path):
    emulator.enqueue(Reply(text="traced"), Reply(text="traced too"))
    with collect_runs() as runs:
        await dispatcher.ainvoke(HI)
        await collect(dispatcher.astream(HI))
    assert [run.run_type for run in runs.traced_runs] == ["llm", "llm"]


async def test_debug_mode_is_honoured(dispatcher, emulator, langchain_path):
    emulator.enqueue(Reply(text="x"))
    set_debug(True)
    try:
        await dispatcher.ainvoke(HI)
    finally:
        set_debug(False)
    assert langchain_path == ["_agenerate"]


async def test_the_llm_cache_answers_a_repeated_call(dispatcher, emulator):
    emulator.enqueue(Reply(text="cached"), Reply(text="not cached"))
    set_llm_cache(InMemoryCache())
    try:
        first = await dispatcher.ainvoke(HI)
        second = await dispatcher.ainvoke(HI)
    finally:
        set_llm_cache(None)
    assert first.content == second.content == "cached"
    assert len(emulator.requests) == 1


class _LangSmithSink(BaseHTTPRequestHandler):
    posts: list[tuple[str, bytes]] = []

    def do_GET(self) -> None:  # /info
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        _LangSmithSink.posts.append((self.path, self.rfile.read(length)))
        self._answer()

    def do_PATCH(self) -> None:
        self.do_POST()

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def langsmith(monkeypatch) -> Iterator[list[tuple[str, bytes]]]:
    """LangSmith tracing switched on by environment, pointed at a loopback sink."""
    from langsmith import utils as ls_utils

    server = ThreadingHTTPServer(("127.0.0.1", 0), _LangSmithSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _LangSmithSink.posts = []
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    ls_utils.get_env_var.cache_clear()  # langsmith caches what it read from the environment
    try:
        yield _LangSmithSink.posts
    finally:
        monkeypatch.undo()
        ls_utils.get_env_var.cache_clear()
        server.shutdown()
        server.server_close()


async def test_langsmith_tracing_by_environment_sends_the_run(
    dispatcher, emulator, langsmith, langchain_path
):
    emulator.enqueue(Reply(text="to langsmith"))
    reply = await dispatcher.ainvoke(HI)
    await asyncio.to_thread(wait_for_all_tracers)
    assert reply.content == "to langsmith"
    assert langchain_path == ["_agenerate"]
    sent = b"".join(body for path, body in langsmith if "/runs" in path)
    assert b"to langsmith" in sent or b"gpt-4o-mini" in sent, langsmith


# -- both paths give the same messages ------------------------------------------------------------
async def test_direct_and_langchain_paths_return_the_same_message(dispatcher, emulator):
    emulator.enqueue(Reply(text="Same answer."), Reply(text="Same answer."))
    direct = await dispatcher.ainvoke(HI)
    recorder = Recorder()
    full = await dispatcher.ainvoke(HI, {"callbacks": [recorder]})
    assert recorder.ends == 1
    assert isinstance(direct, AIMessage) and isinstance(full, AIMessage)
    ignore = {"id", "response_metadata"}
    assert direct.model_dump(exclude=ignore) == full.model_dump(exclude=ignore)
    assert direct.response_metadata.keys() == full.response_metadata.keys()
    assert direct.id and full.id


async def test_direct_and_langchain_streams_yield_the_same_chunks(dispatcher, emulator):
    emulator.enqueue(Reply(text="one two three"), Reply(text="one two three"))
    direct = await collect(dispatcher.astream(HI))
    full = await collect(dispatcher.astream(HI, {"callbacks": [Recorder()]}))
    assert [c.content for c in direct] == [c.content for c in full]
    assert [c.chunk_position for c in direct] == [c.chunk_position for c in full]
    assert direct[-1].usage_metadata == full[-1].usage_metadata
    assert len({chunk.id for chunk in direct}) == 1 and direct[0].id.startswith("lc_run-")


async def test_multimodal_messages_take_langchains_path(dispatcher, emulator, langchain_path):
    emulator.enqueue(Reply(text="seen"))
    parts = [{"type": "text", "text": "hi"}]
    await dispatcher.ainvoke([HumanMessage(content=parts)])
    assert langchain_path == ["_agenerate"]


async def test_unknown_call_options_are_refused_on_the_direct_path(dispatcher, emulator):
    with pytest.raises(Exception) as raised:
        await collect(dispatcher.astream(HI, not_an_option=1))
    assert "not_an_option" in str(raised.value)
    assert emulator.requests == []


async def test_closing_a_direct_stream_early_closes_the_upstream(dispatcher, emulator):
    emulator.enqueue(Reply(text="one two three four five six seven eight", chunk_delay=0.05))
    stream = dispatcher.astream(HI)
    first = await anext(stream)
    assert first.content is not None
    await stream.aclose()
    for _ in range(100):
        if emulator.requests and emulator.requests[-1].disconnected_at is not None:
            break
        await asyncio.sleep(0.02)
    assert emulator.requests[-1].disconnected_at is not None
