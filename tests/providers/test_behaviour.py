"""Behaviour shared by every OpenAI-style provider, parametrized over the emulator profiles."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from langchain_chatchat.testing import Fault, Reply, ToolCallReply
from langchain_chatchat.workers.errors import (
    BadRequestError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

from .support import SPECS, chat_for, sent


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return "sunny"


class Joke(BaseModel):
    """A joke to tell the user."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")


def _merged(chunks):
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


def test_invoke_stream_async_and_batch(llm, emu):
    result = llm.invoke("hello there")
    assert result.content == "Hello! You said: hello there"
    assert result.usage_metadata["input_tokens"] > 0 and result.usage_metadata["output_tokens"] == 7
    assert result.response_metadata["finish_reason"] == "stop"
    assert result.response_metadata["request_id"] == emu.requests[-1].request_id
    assert sent(emu)["stream"] is False and "stream_options" not in sent(emu)

    chunks = list(llm.stream("hello there"))
    assert len(chunks) > 3, "the reply must arrive in pieces"
    assert sum(1 for c in chunks if c.usage_metadata) == 1, "usage is emitted exactly once"
    full = _merged(chunks)
    assert full.content == "Hello! You said: hello there"
    assert full.usage_metadata["output_tokens"] == 7
    assert sent(emu)["stream"] is True
    include_usage = llm.worker.include_usage_option
    assert ("stream_options" in sent(emu)) is include_usage

    assert asyncio.run(llm.ainvoke("hi")).content == "Hello! You said: hi"
    assert [m.content for m in llm.batch(["a", "b"])] == [
        "Hello! You said: a",
        "Hello! You said: b",
    ]


async def test_async_stream(llm, emu):
    chunks = [chunk async for chunk in llm.astream("hello there")]
    assert _merged(chunks).content == "Hello! You said: hello there"
    assert sum(1 for c in chunks if c.usage_metadata) == 1


def test_system_prompt_is_sent_first_and_merged(llm, emu):
    llm.invoke([SystemMessage("be brief"), SystemMessage("be kind"), HumanMessage("hi")])
    messages = sent(emu)["messages"]
    assert messages[0] == {"role": "system", "content": "be brief\n\nbe kind"}
    assert messages[1]["role"] == "user"


def test_system_prompt_in_the_middle_is_rejected_before_sending(llm, emu):
    with pytest.raises(BadRequestError, match="system message may only appear at the start"):
        llm.invoke([HumanMessage("hi"), SystemMessage("late"), HumanMessage("again")])
    assert emu.requests == []


def test_double_messages_are_merged_or_kept_as_the_provider_accepts(llm, emu, provider):
    conversation = [
        HumanMessage("one"),
        HumanMessage("two"),
        AIMessage("a"),
        AIMessage("b"),
        HumanMessage("three"),
    ]
    llm.invoke(conversation)
    roles = [m["role"] for m in sent(emu)["messages"]]
    if llm.worker.message_rules.merge_consecutive:
        assert roles == ["user", "assistant", "user"]
        assert sent(emu)["messages"][0]["content"] == "one\n\ntwo"
    else:
        assert roles == ["user", "user", "assistant", "assistant", "user"]


def test_images_reach_vision_providers_and_are_rejected_by_text_only_ones(llm, emu):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    message = HumanMessage(content=[{"type": "text", "text": "what is this?"}, image])
    if llm.worker.message_rules.images:
        assert llm.invoke([message]).content == "Hello! You said: what is this?"
        assert sent(emu)["messages"][0]["content"][1] == image
    else:
        with pytest.raises(BadRequestError, match="accept only text"):
            llm.invoke([message])
        assert emu.requests == []


@pytest.mark.parametrize("streaming", [False, True])
def test_tool_call_round_trip(llm, emu, streaming):
    bound = llm.bind_tools([get_weather])
    if streaming:
        message = _merged(list(bound.stream("what is the weather in Paris?")))
    else:
        message = bound.invoke("what is the weather in Paris?")
    assert message.tool_calls[0]["name"] == "get_weather"
    assert message.tool_calls[0]["args"] == {"location": "Paris"}
    assert message.response_metadata["finish_reason"] == "tool_calls"
    call_id = message.tool_calls[0]["id"]
    answer = bound.invoke(
        [
            HumanMessage("what is the weather in Paris?"),
            message,
            ToolMessage("sunny", tool_call_id=call_id),
        ]
    )
    assert answer.content == "The result is sunny."
    history = sent(emu)["messages"]
    assert history[1]["tool_calls"][0]["id"] == call_id
    assert history[2] == {"role": "tool", "content": "sunny", "tool_call_id": call_id}


def test_parallel_tool_calls_stream_into_separate_calls(llm, emu):
    emu.enqueue(
        Reply(
            tool_calls=[
                ToolCallReply("get_weather", {"location": "Paris"}),
                ToolCallReply("get_weather", {"location": "Rome"}),
            ]
        )
    )
    message = _merged(list(llm.bind_tools([get_weather]).stream("weather?")))
    assert [c["args"]["location"] for c in message.tool_calls] == ["Paris", "Rome"]
    assert len({c["id"] for c in message.tool_calls}) == 2


def test_forced_tool_is_sent_in_the_form_the_provider_accepts(llm, emu):
    llm.bind_tools([get_weather, Joke], tool_choice="get_weather").invoke("hello")
    body = sent(emu)
    choices = llm.worker.tool_choices
    if "named" in choices:
        assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert len(body["tools"]) == 2
    else:  # only the forced tool is offered
        assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
        assert body.get("tool_choice") in ({"required", "auto"} & choices or {None})


def test_tool_choice_any_and_none(llm, emu):
    choices = llm.worker.tool_choices
    llm.bind_tools([get_weather], tool_choice="any").invoke("hello")
    expected = "required" if "required" in choices else "auto"
    assert sent(emu).get("tool_choice") == expected
    llm.bind_tools([get_weather], tool_choice="none").invoke("weather in Paris?")
    if "none" in choices:
        assert sent(emu)["tool_choice"] == "none"
    else:
        assert "tools" not in sent(emu), "without 'none', tools are withdrawn instead"


@pytest.mark.parametrize("method", ["function_calling", "json_mode", "json_schema"])
def test_structured_output_where_supported(llm, emu, method):
    kind = {"json_mode": "json_object", "json_schema": "json_schema"}.get(method)
    structured = llm.with_structured_output(Joke, method=method)
    prompt = "Tell me a joke about cats, as JSON with 'setup' and 'punchline' keys."
    if kind is not None and kind not in llm.worker.response_formats:
        with pytest.raises(BadRequestError, match=f"does not support response_format '{kind}'"):
            structured.invoke(prompt)
        assert emu.requests == []
        return
    joke = structured.invoke(prompt)
    assert isinstance(joke, Joke) and joke.setup and joke.punchline


def test_stop_sequences_and_max_tokens(llm, emu):
    result = llm.invoke("hello there", stop=["said"])
    assert result.content == "Hello! You "
    assert sent(emu)["stop"] == ["said"]
    result = llm.invoke("hello there", max_tokens=2)
    assert result.content == "Hello!"
    assert result.response_metadata["finish_reason"] == "length"
    assert sent(emu)[llm.worker.max_tokens_field(llm.model)] == 2


def test_too_many_stop_sequences_fail_fast_where_limited(llm, emu):
    limit = llm.worker.max_stop
    if limit is None:
        pytest.skip("no documented limit")
    with pytest.raises(BadRequestError, match="stop sequence"):
        llm.invoke("hi", stop=[f"s{i}" for i in range(limit + 1)])
    assert emu.requests == []


def test_reasoning_is_streamed_separately(llm, emu):
    emu.enqueue(
        Reply(text="42", reasoning="Let me think."), Reply(text="42", reasoning="Let me think.")
    )
    result = llm.invoke("question")
    assert (
        result.content == "42" and result.additional_kwargs["reasoning_content"] == "Let me think."
    )
    full = _merged(list(llm.stream("question")))
    assert full.content == "42" and full.additional_kwargs["reasoning_content"] == "Let me think."
    assert full.usage_metadata["output_token_details"]["reasoning"] == 4


def test_error_in_the_middle_of_a_stream_is_raised_after_the_partial_text(llm, emu):
    opening = 1 if emu.profile.prompt_filter_chunk else 0  # Azure's prompt-filter chunk
    emu.enqueue(Fault.stream_error(3 + opening, "server_error", "boom", status=500))
    seen = []
    with pytest.raises(Exception) as raised:
        for chunk in llm.stream("hello there"):
            seen.append(chunk.content)
    assert "".join(seen) == "Hello! You"
    assert raised.type.__module__ == "langchain_chatchat.workers.errors"


def test_dropped_stream_raises_upstream_unavailable(llm, emu):
    emu.enqueue(Reply(text="one two three four", drop_after_chunks=2))
    with pytest.raises(UpstreamUnavailableError):
        list(llm.stream("hi"))


def test_retry_before_the_first_chunk(provider, emu):
    llm = chat_for(provider, max_retries=2)
    emu.enqueue(Reply(text="lost", drop_after_chunks=0), Reply(text="second try"))
    assert _merged(list(llm.stream("hi"))).content == "second try"
    assert len(emu.requests) == 2


def test_timeout_is_typed_and_the_client_hangs_up(provider, emu):
    llm = chat_for(provider, timeout=0.3)
    emu.enqueue(Fault.hang(5))
    with pytest.raises(UpstreamTimeoutError):
        llm.invoke("hi")


def test_missing_api_key_is_an_authentication_error(provider, monkeypatch):
    from langchain_chatchat.workers.errors import AuthenticationError

    spec = SPECS[provider]
    monkeypatch.delenv(spec.key_env, raising=False)
    if provider == "openai_compatible":
        spec.chat(model=spec.model, base_url="http://127.0.0.1:9/v1")  # local servers need no key
        return
    with pytest.raises(
        AuthenticationError, match=spec.key_env if provider != "azure" else "AZURE_OPENAI_API_KEY"
    ):
        spec.chat(
            model=spec.model, base_url="http://127.0.0.1:9/v1", azure_endpoint="http://127.0.0.1:9"
        )
