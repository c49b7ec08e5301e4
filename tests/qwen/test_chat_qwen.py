"""ChatQwen against the DashScope emulator, through the official dashscope SDK."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from langchain_chatchat import ChatQwen
from langchain_chatchat.testing import Reply, ToolCallReply
from tests.qwen.conftest import sent


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Joke(BaseModel):
    """A joke to tell the user."""

    setup: str = Field(description="question to set up the joke")
    punchline: str = Field(description="answer that resolves the joke")


def test_invoke_returns_text_usage_and_metadata(llm, emulator):
    emulator.enqueue(Reply(text="Hello there!", usage={"input_tokens": 5, "output_tokens": 3}))
    message = llm.invoke("hi")
    assert isinstance(message, AIMessage)
    assert message.content == "Hello there!"
    assert message.usage_metadata == {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    meta = message.response_metadata
    assert meta["model_name"] == "qwen-plus" and meta["finish_reason"] == "stop"
    assert meta["request_id"] and meta["request_id"] == emulator.last_request_id


def test_system_message_and_sampling_parameters_reach_the_provider(emulator):
    llm = ChatQwen(
        model="qwen-max",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        temperature=0.3,
        top_p=0.8,
        max_tokens=64,
        seed=7,
        stop=["END"],
    )
    llm.invoke([SystemMessage("You are terse."), HumanMessage("hi")])
    body = sent(emulator)
    assert body["model"] == "qwen-max"
    assert body["input"]["messages"][0] == {"role": "system", "content": "You are terse."}
    params = body["parameters"]
    assert (
        params["temperature"],
        params["top_p"],
        params["max_tokens"],
        params["seed"],
        params["stop"],
    ) == (0.3, 0.8, 64, 7, ["END"])
    assert params["result_format"] == "message"


def test_call_time_stop_overrides(llm, emulator):
    llm.invoke("hi", stop=["you"])
    assert sent(emulator)["parameters"]["stop"] == ["you"]


def test_stream_is_token_by_token_with_default_settings(llm, emulator):
    emulator.enqueue(
        Reply(text="one two three four", usage={"input_tokens": 2, "output_tokens": 4})
    )
    chunks = list(llm.stream("count"))
    texts = [c.content for c in chunks if c.content]
    assert texts == ["one", " two", " three", " four"]
    assert emulator.requests[-1].headers.get("x-dashscope-sse") == "enable"
    assert sent(emulator)["parameters"]["incremental_output"] is True
    with_usage = [c for c in chunks if c.usage_metadata]
    assert len(with_usage) == 1 and with_usage[0].usage_metadata["total_tokens"] == 6
    full = sum(chunks[1:], chunks[0])
    assert full.content == "one two three four"
    assert full.response_metadata["finish_reason"] == "stop"
    assert full.usage_metadata == {"input_tokens": 2, "output_tokens": 4, "total_tokens": 6}


def test_cumulative_provider_streams_become_incremental(emulator):
    # Chatchat 0.2 derived deltas with str.replace and lost repeated text ("ha" after "ha").
    # With incremental_output=False the SDK hands us cumulative responses; we convert them back.
    llm = ChatQwen(
        model="qwen-plus",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        model_kwargs={"incremental_output": False},
    )
    emulator.enqueue(Reply(text="ha ha ha"))
    texts = [c.content for c in llm.stream("laugh") if c.content]
    assert "".join(texts) == "ha ha ha"
    assert texts == ["ha", " ha", " ha"]


async def test_async_invoke_and_stream(llm, emulator):
    emulator.enqueue(Reply(text="async hello"))
    message = await llm.ainvoke("hi")
    assert message.content == "async hello"
    emulator.enqueue(Reply(text="a b c"))
    texts = [chunk.content async for chunk in llm.astream("hi") if chunk.content]
    assert texts == ["a", " b", " c"]


async def test_async_calls_run_concurrently(emulator):
    llm = ChatQwen(model="qwen-plus", api_key=emulator.api_key, base_url=emulator.base_url)
    emulator.enqueue(*[Reply(text=f"r{i}", first_chunk_delay=0.5) for i in range(4)])
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(4)))
    assert sorted(r.content for r in results) == ["r0", "r1", "r2", "r3"]
    assert loop.time() - start < 1.5  # four 0.5 s replies overlap: no thread pool, no lock


def test_batch(llm, emulator):
    results = llm.batch(["first question", "second question"])
    assert [isinstance(r, AIMessage) and r.content for r in results] == [
        results[0].content,
        results[1].content,
    ]
    assert {
        body["input"]["messages"][-1]["content"] for body in (r.body for r in emulator.requests)
    } == {"first question", "second question"}


def test_tool_calls_invoke_and_stream(llm, emulator):
    bound = llm.bind_tools([add])
    emulator.enqueue(
        Reply(tool_calls=[ToolCallReply(name="add", arguments={"a": 2, "b": 3}, id="call_1")])
    )
    message = bound.invoke("what is 2+3?")
    assert message.tool_calls == [
        {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_1", "type": "tool_call"}
    ]
    assert message.response_metadata["finish_reason"] == "tool_calls"
    tools = sent(emulator)["parameters"]["tools"]
    assert tools[0]["function"]["name"] == "add"

    emulator.enqueue(
        Reply(tool_calls=[ToolCallReply(name="add", arguments={"a": 2, "b": 3}, id="call_2")])
    )
    chunks = list(bound.stream("what is 2+3?"))
    assert sum(1 for c in chunks if c.tool_call_chunks) > 1  # arguments arrive in pieces
    full = sum(chunks[1:], chunks[0])
    assert isinstance(full, AIMessageChunk)
    assert full.tool_calls == [
        {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_2", "type": "tool_call"}
    ]


def test_tool_round_trip_sends_tool_results_back(llm, emulator):
    bound = llm.bind_tools([add])
    question = HumanMessage("what is 2+3?")
    call = bound.invoke([question])
    assert call.tool_calls and call.tool_calls[0]["name"] == "add"
    result = add.invoke(call.tool_calls[0])
    assert isinstance(result, ToolMessage)
    answer = bound.invoke([question, call, result])
    assert answer.content and not answer.tool_calls
    messages = sent(emulator)["input"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "add"
    assert messages[2]["tool_call_id"] == call.tool_calls[0]["id"] and messages[2]["name"] == "add"


def test_tool_choice_forms(llm, emulator):
    llm.bind_tools([add], tool_choice="add").invoke("hi")
    assert sent(emulator)["parameters"]["tool_choice"] == {
        "type": "function",
        "function": {"name": "add"},
    }
    llm.bind_tools([add], tool_choice="any").invoke(
        "hi"
    )  # one tool: forcing "any" means forcing it
    assert sent(emulator)["parameters"]["tool_choice"] == {
        "type": "function",
        "function": {"name": "add"},
    }
    llm.bind_tools([add], tool_choice="none").invoke("hi")
    assert sent(emulator)["parameters"]["tool_choice"] == "none"
    with pytest.raises(ValueError, match="tool_choice"):
        llm.bind_tools([add], tool_choice="multiply")


@pytest.mark.parametrize("method", ["function_calling", "json_mode", "json_schema"])
def test_structured_output(llm, emulator, method):
    if method == "json_mode":  # JSON mode constrains syntax only; the prompt carries the schema
        emulator.enqueue(
            Reply(
                text='{"setup": "Why did the cat sit on the laptop?", "punchline": "To keep an eye on the mouse."}'
            )
        )
    structured = llm.with_structured_output(Joke, method=method)
    joke = structured.invoke("Tell me a joke about cats, as JSON.")
    assert isinstance(joke, Joke) and joke.setup and joke.punchline
    params = sent(emulator)["parameters"]
    if method == "function_calling":
        assert params["tool_choice"] == {"type": "function", "function": {"name": "Joke"}}
    elif method == "json_mode":
        assert params["response_format"] == {"type": "json_object"}
    else:
        assert params["response_format"]["type"] == "json_schema"
        assert params["response_format"]["json_schema"]["schema"]["required"] == [
            "setup",
            "punchline",
        ]


def test_structured_output_include_raw(llm):
    out = llm.with_structured_output(Joke, include_raw=True).invoke("Tell me a joke")
    assert (
        isinstance(out["raw"], AIMessage)
        and isinstance(out["parsed"], Joke)
        and out["parsing_error"] is None
    )


def test_thinking_is_returned_and_streamed(emulator):
    llm = ChatQwen(
        model="qwen3-8b", api_key=emulator.api_key, base_url=emulator.base_url, enable_thinking=True
    )
    emulator.enqueue(
        Reply(text="Blue light scatters.", reasoning="Rayleigh scattering explains it.")
    )
    message = llm.invoke("why is the sky blue?")
    assert message.additional_kwargs["reasoning_content"] == "Rayleigh scattering explains it."
    assert message.content == "Blue light scatters."
    assert sent(emulator)["parameters"]["enable_thinking"] is True
    assert (
        emulator.requests[-1].headers.get("x-dashscope-sse") == "enable"
    )  # thinking needs a stream

    emulator.enqueue(
        Reply(text="Blue light scatters.", reasoning="Rayleigh scattering explains it.")
    )
    chunks = list(llm.stream("why is the sky blue?"))
    reasoning = [
        c.additional_kwargs["reasoning_content"]
        for c in chunks
        if c.additional_kwargs.get("reasoning_content")
    ]
    assert len(reasoning) > 1 and "".join(reasoning) == "Rayleigh scattering explains it."
    full = sum(chunks[1:], chunks[0])
    assert full.additional_kwargs["reasoning_content"] == "Rayleigh scattering explains it."


def test_stream_only_models_work_through_invoke(emulator):
    llm = ChatQwen(model="qwq-plus", api_key=emulator.api_key, base_url=emulator.base_url)
    message = llm.invoke("2+2?")
    assert message.content and message.usage_metadata["output_tokens"] > 0
    assert message.additional_kwargs.get("reasoning_content")


def test_enable_search_and_model_kwargs_are_forwarded(emulator):
    llm = ChatQwen(
        model="qwen-plus",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        enable_search=True,
        model_kwargs={"repetition_penalty": 1.1},
    )
    llm.invoke("news?")
    params = sent(emulator)["parameters"]
    assert params["enable_search"] is True and params["repetition_penalty"] == 1.1


def test_model_can_be_overridden_per_call(llm, emulator):
    message = llm.invoke("hi", model="qwen-turbo")
    assert sent(emulator)["model"] == "qwen-turbo"
    assert message.response_metadata["model_name"] == "qwen-turbo"


def test_key_comes_from_the_environment(monkeypatch, emulator):
    monkeypatch.setenv("DASHSCOPE_API_KEY", emulator.api_key)
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", emulator.base_url)
    assert ChatQwen(model="qwen-plus").invoke("hi").content


def test_langchain_conventions(emulator):
    llm = ChatQwen(
        model_name="qwen-plus",
        dashscope_api_key="sk-conventions",
        base_url=emulator.base_url,
        temperature=0.5,
        max_tokens=10,
    )
    assert llm.model == "qwen-plus"
    assert llm._llm_type == "chatchat-qwen"
    assert llm.lc_secrets == {"api_key": "DASHSCOPE_API_KEY"}
    ls = llm._get_ls_params(stop=["x"])
    assert ls == {
        "ls_provider": "qwen",
        "ls_model_name": "qwen-plus",
        "ls_model_type": "chat",
        "ls_temperature": 0.5,
        "ls_max_tokens": 10,
        "ls_stop": ["x"],
    }
    assert llm._identifying_params["model_name"] == "qwen-plus"


async def test_streaming_flag_makes_invoke_use_the_stream(emulator):
    llm = ChatQwen(
        model="qwen-plus", api_key=emulator.api_key, base_url=emulator.base_url, streaming=True
    )
    emulator.enqueue(Reply(text="one two three", usage={"input_tokens": 2, "output_tokens": 3}))
    message = llm.invoke("count")
    assert isinstance(message, AIMessage) and message.content == "one two three"
    assert message.usage_metadata["total_tokens"] == 5
    assert emulator.requests[-1].headers.get("x-dashscope-sse") == "enable"
    emulator.enqueue(
        Reply(tool_calls=[ToolCallReply(name="add", arguments={"a": 2, "b": 3}, id="call_s")])
    )
    called = await llm.bind_tools([add]).ainvoke("what is 2+3?")
    assert called.tool_calls == [
        {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_s", "type": "tool_call"}
    ]
    assert emulator.requests[-1].headers.get("x-dashscope-sse") == "enable"
