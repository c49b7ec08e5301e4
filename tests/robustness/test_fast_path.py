"""The chat models' unobserved fast path: taken only when LangChain would attach no handler,
and indistinguishable from LangChain's own path to the caller.

`ChatchatChatModel.ainvoke/astream` skip the callback manager when `_unobserved` says nothing
listens. That check re-states `CallbackManager.configure`'s sources of handlers; these tests
hold the two in step (so a langchain-core upgrade that adds a source fails here, not silently
in production) and compare the messages both paths produce.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import AsyncCallbackHandler, AsyncCallbackManager, BaseCallbackHandler
from langchain_core.globals import set_debug, set_llm_cache
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.context import collect_runs, tracing_v2_enabled

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
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
def emulator():
    with OpenAICompatibleEmulator("openai_compatible") as emulator:
        yield emulator


@pytest.fixture
def model(emulator) -> ChatOpenAICompatible:
    emulator.reset()
    return ChatOpenAICompatible(
        model="gpt-4o-mini", base_url=emulator.base_url, api_key=emulator.api_key, max_retries=0
    )


def configure_says_unobserved(model: ChatchatChatModel, config: dict[str, Any]) -> bool:
    manager = AsyncCallbackManager.configure(
        config.get("callbacks"), model.callbacks, model.verbose
    )
    return not manager.handlers


def both(model: ChatchatChatModel, config: dict[str, Any]) -> tuple[bool, bool]:
    return model._unobserved(config, {}, cached=False), configure_says_unobserved(model, config)


def test_plain_call_is_unobserved(model):
    assert both(model, {}) == (True, True)


def test_handlers_in_config_or_on_the_model_are_observed(model):
    assert both(model, {"callbacks": [Recorder()]}) == (False, False)
    assert both(model, {"callbacks": AsyncCallbackManager(handlers=[Recorder()])}) == (False, False)
    assert both(model, {"callbacks": AsyncCallbackManager(handlers=[])}) == (True, True)
    assert both(model.model_copy(update={"callbacks": [Recorder()]}), {}) == (False, False)
    assert both(model.model_copy(update={"verbose": True}), {}) == (False, False)


def test_debug_is_observed(model):
    set_debug(True)
    try:
        assert both(model, {}) == (False, False)
    finally:
        set_debug(False)


def test_langsmith_tracing_is_observed(model, monkeypatch):
    from langsmith import utils as ls_utils

    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test")
    ls_utils.get_env_var.cache_clear()  # langsmith caches what it read from the environment
    try:
        assert both(model, {}) == (False, False)
    finally:
        monkeypatch.undo()
        ls_utils.get_env_var.cache_clear()
    assert both(model, {}) == (True, True)


def test_tracing_context_and_configure_hooks_are_observed(model):
    with tracing_v2_enabled(project_name="robustness-test"):
        assert both(model, {}) == (False, False)
    with collect_runs():
        assert both(model, {}) == (False, False)


def test_llm_cache_and_rate_limiter_take_the_full_path(model):
    assert model._unobserved({}, {}, cached=True)
    set_llm_cache(InMemoryCache())
    try:
        assert not model._unobserved({}, {}, cached=True)
        assert model._unobserved({}, {}, cached=False)  # astream does not use the cache
    finally:
        set_llm_cache(None)


async def test_fast_and_full_paths_return_the_same_message(model, emulator):
    emulator.enqueue(Reply(text="Same answer."), Reply(text="Same answer."))
    fast = await model.ainvoke(HI)
    recorder = Recorder()
    full = await model.ainvoke(HI, {"callbacks": [recorder]})
    assert recorder.ends == 1  # the full path really ran
    assert isinstance(fast, AIMessage) and isinstance(full, AIMessage)
    ignore = {"id", "response_metadata"}
    assert fast.model_dump(exclude=ignore) == full.model_dump(exclude=ignore)
    assert fast.response_metadata.keys() == full.response_metadata.keys()
    assert fast.id and full.id


async def test_fast_and_full_streams_yield_the_same_chunks(model, emulator):
    emulator.enqueue(Reply(text="one two three"), Reply(text="one two three"))
    fast = [chunk async for chunk in model.astream(HI)]
    recorder = Recorder()
    full = [chunk async for chunk in model.astream(HI, {"callbacks": [recorder]})]
    assert "".join(recorder.tokens) == "one two three"
    assert all(isinstance(chunk, AIMessageChunk) for chunk in fast + full)
    assert [c.content for c in fast] == [c.content for c in full]
    assert [c.chunk_position for c in fast] == [c.chunk_position for c in full]
    assert fast[-1].usage_metadata == full[-1].usage_metadata
    assert len({chunk.id for chunk in fast}) == 1 and fast[0].id.startswith("lc_run-")
    merged = fast[0]
    for chunk in fast[1:]:
        merged += chunk
    assert merged.content == "one two three"


async def test_inside_a_chain_with_callbacks_the_full_path_runs(model, emulator):
    emulator.enqueue(Reply(text="chained"))
    recorder = Recorder()
    chain = RunnableLambda(lambda text: [HumanMessage(text)]) | model
    reply = await chain.ainvoke("hi", {"callbacks": [recorder]})
    assert reply.content == "chained"
    assert recorder.ends == 1


async def test_astream_events_sees_every_token(model, emulator):
    emulator.enqueue(Reply(text="a b c"))
    tokens = [
        event["data"]["chunk"].content
        async for event in model.astream_events(HI, version="v2")
        if event["event"] == "on_chat_model_stream"
    ]
    assert "".join(tokens) == "a b c"


async def test_closing_a_fast_stream_early_closes_the_upstream(model, emulator):
    emulator.enqueue(Reply(text="one two three four five six seven eight", chunk_delay=0.05))
    stream = model.astream(HI)
    first = await anext(stream)
    assert first.content is not None
    await stream.aclose()
    for _ in range(100):
        if emulator.requests and emulator.requests[-1].disconnected_at is not None:
            break
        await __import__("asyncio").sleep(0.02)
    assert emulator.requests[-1].disconnected_at is not None


def test_sync_handler_instance_counts_too(model):
    class SyncHandler(BaseCallbackHandler):
        pass

    assert both(model, {"callbacks": [SyncHandler()]}) == (False, False)
