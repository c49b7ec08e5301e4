"""/v1/chat/completions driven by the official openai SDK, over ChatQwen and the emulator."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from langchain_chatchat.testing import Reply, ToolCallReply
from tests.server.conftest import API_KEY, sent

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_non_stream_reply_usage_and_system_prompt(client, emulator):
    emulator.enqueue(Reply(text="Hi there!", usage={"input_tokens": 12, "output_tokens": 3}))
    reply = client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
    )
    assert reply.object == "chat.completion"
    assert reply.model == "qwen-plus"
    assert reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "Hi there!"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (
        12,
        3,
        15,
    )
    assert sent(emulator)["input"]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_stream_deltas_and_include_usage(client, emulator):
    emulator.enqueue(Reply(text="one two three", usage={"input_tokens": 4, "output_tokens": 3}))
    chunks = list(
        client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert (
        len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    )  # really incremental
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["stop"]
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4, 3)


def test_stream_without_include_usage_has_no_usage_chunk(client, emulator):
    chunks = list(
        client.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.choices and c.usage is None for c in chunks)


def test_raw_stream_is_sse_ending_with_done(server_url, emulator):
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST",
        f"{server_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"


async def test_async_non_stream_and_stream(aclient, emulator):
    reply = await aclient.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == "Hello! You said: hello"
    stream = await aclient.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = [chunk async for chunk in stream]
    assert (
        "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
        == "Hello! You said: hello"
    )
    assert pieces[-1].usage.total_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(client, emulator, stream):
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        calls: dict[int, dict] = {}
        finish = None
        for chunk in client.chat.completions.create(
            model="qwen-plus", messages=messages, tools=[WEATHER_TOOL], stream=True
        ):
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or []:
                call = calls.setdefault(piece.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = call["id"] or piece.id
                call["name"] += piece.function.name or ""
                call["arguments"] += piece.function.arguments or ""
        assert finish == "tool_calls"
        (call,) = calls.values()
    else:
        reply = client.chat.completions.create(
            model="qwen-plus", messages=messages, tools=[WEATHER_TOOL]
        )
        assert reply.choices[0].finish_reason == "tool_calls"
        assert reply.choices[0].message.content is None
        (tool_call,) = reply.choices[0].message.tool_calls
        call = {
            "id": tool_call.id,
            "name": tool_call.function.name,
            "arguments": tool_call.function.arguments,
        }
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert sent(emulator)["parameters"]["tools"] == [WEATHER_TOOL]

    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "22 degrees and sunny"},
    ]
    final = client.chat.completions.create(
        model="qwen-plus", messages=messages, tools=[WEATHER_TOOL]
    )
    assert final.choices[0].message.content == "The result is 22 degrees and sunny."
    upstream = sent(emulator)["input"]["messages"]
    assert upstream[1]["tool_calls"][0]["id"] == call["id"]
    assert upstream[2] == {
        "role": "tool",
        "content": "22 degrees and sunny",
        "tool_call_id": call["id"],
        "name": "get_weather",
    }


@pytest.mark.parametrize(
    ("tool_choice", "upstream"),
    [
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        ("required", {"type": "function", "function": {"name": "get_weather"}}),
        ("none", "none"),
    ],
)
def test_tool_choice_reaches_the_provider(client, emulator, tool_choice, upstream):
    client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "hi"}],
        tools=[WEATHER_TOOL],
        tool_choice=tool_choice,
    )
    assert sent(emulator)["parameters"]["tool_choice"] == upstream


def test_tool_choice_naming_an_unknown_tool_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "hi"}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert caught.value.body["param"] == "tool_choice"


def test_streamed_tool_call_deltas_carry_id_and_name_once(client, emulator):
    emulator.enqueue(
        Reply(tool_calls=[ToolCallReply("get_weather", {"city": "Oslo"}, id="call_1")])
    )
    pieces = [
        piece
        for chunk in client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
        for piece in chunk.choices[0].delta.tool_calls or []
    ]
    assert [p.id for p in pieces if p.id] == ["call_1"]
    assert [p.function.name for p in pieces if p.function.name] == ["get_weather"]
    assert json.loads("".join(p.function.arguments for p in pieces)) == {"city": "Oslo"}


def test_response_format_json_object(client, emulator):
    reply = client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "Give me a JSON object with a name"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(reply.choices[0].message.content), dict)
    assert sent(emulator)["parameters"]["response_format"] == {"type": "json_object"}


def test_response_format_json_schema(client, emulator):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": schema, "strict": True},
    }
    reply = client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "A person"}],
        response_format=response_format,
    )
    assert set(json.loads(reply.choices[0].message.content)) == {"name", "age"}
    assert sent(emulator)["parameters"]["response_format"] == response_format


def test_sampling_parameters_reach_the_provider(client, emulator):
    client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.3,
        top_p=0.9,
        seed=7,
        stop=["END"],
        max_tokens=20,
        user="user-1",
        extra_body={"enable_search": True},
    )
    parameters = sent(emulator)["parameters"]
    assert parameters["temperature"] == 0.3
    assert parameters["top_p"] == 0.9
    assert parameters["seed"] == 7
    assert parameters["stop"] == ["END"]
    assert parameters["max_tokens"] == 20
    assert parameters["enable_search"] is True


def test_max_completion_tokens_and_stop_cut_the_reply(client, emulator):
    reply = client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "one two three four five"}],
        max_completion_tokens=2,
    )
    assert sent(emulator)["parameters"]["max_tokens"] == 2
    assert reply.choices[0].finish_reason == "length"
    reply = client.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": "alpha beta"}], stop="beta"
    )
    assert "beta" not in reply.choices[0].message.content


def test_n_greater_than_one_is_a_clear_400(client, emulator):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert caught.value.body["param"] == "n"
    assert "n > 1" in caught.value.body["message"]
    assert emulator.requests == []


def test_reasoning_content_is_passed_on(client, emulator):
    emulator.enqueue(Reply(text="42", reasoning="Let me think."))
    reply = client.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": "answer?"}]
    )
    assert reply.choices[0].message.model_extra["reasoning_content"] == "Let me think."


def test_second_model_answers_under_its_own_name(client, emulator):
    reply = client.chat.completions.create(
        model="qwen-turbo", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.model == "qwen-turbo"
    assert sent(emulator)["model"] == "qwen-turbo"
