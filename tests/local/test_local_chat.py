"""ChatLocal end to end on tiny models: template, streaming, usage, stops, tools, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from transformers import AutoTokenizer

from langchain_chatchat.chat_models.local import ChatLocal
from langchain_chatchat.providers import get_provider
from langchain_chatchat.workers.errors import BadRequestError, ContextLengthError
from langchain_chatchat.workers.local.engine import QueueFullError, SamplingParams

from .tiny_models import WEATHER_QUESTION, get_weather


@pytest.fixture
def chat(tiny_chat_model: str) -> ChatLocal:
    return ChatLocal(model=tiny_chat_model, temperature=0, max_tokens=12)


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.01)
    return condition()


def test_provider_registered_with_alias() -> None:
    assert get_provider("local").class_for("chat") is ChatLocal
    assert get_provider("huggingface") is get_provider("local")


def test_invoke_reports_real_token_counts_with_the_system_prompt(chat, tiny_chat_model) -> None:
    messages = [SystemMessage("Be brief."), HumanMessage("Hello")]
    result = chat.invoke(messages)
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    prompt = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )["input_ids"]
    assert result.usage_metadata == {
        "input_tokens": len(prompt),
        "output_tokens": 12,
        "total_tokens": len(prompt) + 12,
    }
    assert result.response_metadata["finish_reason"] == "length"
    assert result.response_metadata["model_name"] == tiny_chat_model
    assert result.id.startswith("local-")


def test_stream_adds_up_to_invoke(chat) -> None:
    chunks = list(chat.stream("Hello"))
    full = sum(chunks[1:], chunks[0])
    assert isinstance(full, AIMessageChunk)
    assert full.content == chat.invoke("Hello").content
    assert chunks[-1].usage_metadata["output_tokens"] == 12
    assert chunks[-1].chunk_position == "last"
    assert len(chunks) > 3, "text must arrive token by token"


async def test_astream_adds_up_to_invoke(chat) -> None:
    text = "".join([chunk.content async for chunk in chat.astream("Hello")])
    assert text == (await chat.ainvoke("Hello")).content


def test_stop_sequence_cuts_the_reply(chat) -> None:
    text = chat.invoke("Hello").content
    stop = text[4:6]
    result = chat.invoke("Hello", stop=[stop])
    assert result.content == text[: text.index(stop)]
    assert result.response_metadata["finish_reason"] == "stop"
    assert result.usage_metadata["output_tokens"] < 12


def test_seeded_sampling_is_reproducible(chat) -> None:
    first = chat.invoke("Hello", temperature=1.0, seed=3, max_tokens=20).content
    assert chat.invoke("Hello", temperature=1.0, seed=3, max_tokens=20).content == first
    assert chat.invoke("Hello", temperature=1.0, seed=4, max_tokens=20).content != first


def test_concurrent_calls_are_batched(tiny_chat_model) -> None:
    chat = ChatLocal(
        model=tiny_chat_model, temperature=0, max_tokens=40, max_queue=17
    )  # its own engine
    solo = [chat.invoke(prompt).content for prompt in ("a", "bb", "ccc", "dddd")]
    chat.worker.engine.batch_sizes.clear()
    assert [m.content for m in chat.batch(["a", "bb", "ccc", "dddd"])] == solo
    assert max(chat.worker.engine.batch_sizes) == 4


async def test_async_calls_are_batched(tiny_chat_model) -> None:
    chat = ChatLocal(model=tiny_chat_model, temperature=0, max_tokens=40, max_queue=18)
    chat.worker.engine.batch_sizes.clear()
    await asyncio.gather(*(chat.ainvoke(prompt) for prompt in ("a", "bb", "ccc", "dddd")))
    assert max(chat.worker.engine.batch_sizes) == 4


def test_closing_a_stream_stops_generation(tiny_chat_model) -> None:
    chat = ChatLocal(model=tiny_chat_model, max_tokens=400)
    stream = chat.stream("Hello")
    next(stream)
    assert chat.worker.engine.active_count == 1
    stream.close()
    assert wait_until(lambda: chat.worker.engine.active_count == 0)


async def test_cancelling_an_async_stream_stops_generation(tiny_chat_model) -> None:
    chat = ChatLocal(model=tiny_chat_model, max_tokens=400)

    async def consume() -> None:
        async for _ in chat.astream("Hello"):
            await asyncio.sleep(0)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    assert chat.worker.engine.active_count == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(500):
        if chat.worker.engine.active_count == 0:
            break
        await asyncio.sleep(0.01)
    assert chat.worker.engine.active_count == 0


async def test_async_stream_does_not_block_the_event_loop(tiny_chat_model) -> None:
    chat = ChatLocal(model=tiny_chat_model, max_tokens=200)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    beat = asyncio.create_task(heartbeat())
    chunks = [chunk async for chunk in chat.astream("Hello")]
    beat.cancel()
    assert ticks > len(chunks)


def test_full_queue_raises_429(tiny_chat_model) -> None:
    chat = ChatLocal(
        model=tiny_chat_model, max_tokens=400, max_batch_size=1, max_queue=1, max_retries=0
    )
    running = chat.stream("a")
    next(running)
    engine = chat.worker.engine
    waiting = engine.submit([1, 2, 3], SamplingParams(max_new_tokens=5), lambda event: None)
    try:
        with pytest.raises(QueueFullError) as raised:
            chat.invoke("c")
        assert raised.value.status_code == 429
    finally:
        waiting.cancel()
        running.close()


def test_tools_need_a_tool_template(chat) -> None:
    with pytest.raises(BadRequestError, match="does not support tools"):
        chat.bind_tools([get_weather]).invoke("hi")


def test_tool_call_from_a_trained_model(tool_chat_model) -> None:
    chat = ChatLocal(model=tool_chat_model, temperature=0, max_tokens=60).bind_tools([get_weather])
    result = chat.invoke(WEATHER_QUESTION)
    assert result.content == "Let me check."
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert result.response_metadata["finish_reason"] == "tool_calls"
    chunks = list(chat.stream(WEATHER_QUESTION))
    full = sum(chunks[1:], chunks[0])
    assert full.content == "Let me check."
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_tool_history_renders_through_the_template(tool_chat_model) -> None:
    chat = ChatLocal(model=tool_chat_model, temperature=0, max_tokens=60).bind_tools([get_weather])
    first = chat.invoke(WEATHER_QUESTION)
    answer = ToolMessage("Sunny", tool_call_id=first.tool_calls[0]["id"])
    follow_up = chat.invoke([HumanMessage(WEATHER_QUESTION), first, answer])
    assert follow_up.usage_metadata["input_tokens"] > first.usage_metadata["input_tokens"]


def test_forced_tool_choice_starts_the_call(tool_chat_model) -> None:
    chat = ChatLocal(model=tool_chat_model, temperature=0, max_tokens=30)
    result = chat.bind_tools([get_weather], tool_choice="get_weather").invoke("Anything")
    # the random continuation is rarely valid JSON, but the forced call and its name are there
    calls = result.tool_calls + result.invalid_tool_calls
    assert [call["name"] for call in calls] == ["get_weather"]


def test_response_format_is_refused(chat) -> None:
    with pytest.raises(BadRequestError, match="response_format"):
        chat.invoke("hi", response_format={"type": "json_object"})


def test_too_long_prompt_is_a_context_length_error(chat) -> None:
    with pytest.raises(ContextLengthError):
        chat.invoke("word " * 600)


def test_chat_template_override(tiny_chat_model) -> None:
    plain = (
        ChatLocal(model=tiny_chat_model, max_tokens=1).invoke("Hi").usage_metadata["input_tokens"]
    )
    custom = ChatLocal(
        model=tiny_chat_model, max_tokens=1, chat_template="{{ messages[0].content }}"
    )
    assert custom.invoke("Hi").usage_metadata["input_tokens"] < plain
