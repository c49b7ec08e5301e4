"""ChatGemini and GeminiEmbeddings served by `create_app`, reached with the openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, Fault, GeminiEmulator

API_KEY = "sk-gemini-server-test"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather at a location.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[GeminiEmulator]:
    with GeminiEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def server_url(upstream: GeminiEmulator) -> Iterator[str]:
    params = {"api_key": upstream.api_key, "base_url": upstream.base_url, "max_retries": 0}
    models = [
        {"name": "gemini", "provider": "google", "params": {"model": "gemini-2.5-flash", **params}},
        {
            "name": "gemini-embed",
            "provider": "gemini",
            "kind": "embeddings",
            "params": {"model": "gemini-embedding-001", **params},
        },
    ]
    app = create_app({"server": {"api_keys": [API_KEY]}, "models": models})
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture
def client(server_url: str, upstream: GeminiEmulator) -> Iterator[openai.OpenAI]:
    upstream.reset()
    yield openai.OpenAI(base_url=f"{server_url}/v1", api_key=API_KEY, max_retries=0)
    upstream.reset()


def test_chat_completion(client, upstream):
    reply = client.chat.completions.create(
        model="gemini",
        messages=[
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": "hello there"},
        ],
    )
    assert reply.choices[0].message.content == "Hello! You said: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 4 and reply.usage.completion_tokens > 7  # thoughts
    assert upstream.requests[-1].body["systemInstruction"]["parts"] == [{"text": "be kind"}]


def test_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model="gemini",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! You said: hello there"
    assert [c.usage for c in chunks if c.usage][0].prompt_tokens == 2


def test_tool_call_round_trip(client, upstream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = client.chat.completions.create(
        model="gemini", messages=messages, tools=[WEATHER], tool_choice="required"
    )
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"location": "Paris"}
    messages += [
        reply.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    answer = client.chat.completions.create(model="gemini", messages=messages, tools=[WEATHER])
    assert answer.choices[0].message.content == "The result is sunny, 21C."
    response = upstream.requests[-1].body["contents"][-1]["parts"][0]["functionResponse"]
    assert response == {"name": "get_weather", "response": {"result": "sunny, 21C"}}


def test_json_schema_response_format(client):
    reply = client.chat.completions.create(
        model="gemini",
        messages=[{"role": "user", "content": "a city"}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "city",
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
            },
        },
    )
    assert set(json.loads(reply.choices[0].message.content)) == {"name"}


def test_upstream_errors_are_openai_errors(client, upstream):
    upstream.enqueue(Fault.http(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted."))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gemini", messages=[{"role": "user", "content": "x"}], temperature=3
        )


def test_embeddings(client, upstream):
    reply = client.embeddings.create(model="gemini-embed", input=["one", "two", "three"])
    assert [d.index for d in reply.data] == [0, 1, 2]
    assert len(reply.data[0].embedding) == 3072
    assert upstream.requests[-1].path.endswith(":batchEmbedContents")


def test_gemini_call_options_over_http(client, upstream):
    client.chat.completions.create(
        model="gemini",
        messages=[{"role": "user", "content": "x"}],
        extra_body={"thinking_budget": 0, "top_k": 5},
    )
    config = upstream.requests[-1].body["generationConfig"]
    assert config["topK"] == 5 and config["thinkingConfig"] == {"thinking_budget": 0}
    for extra in ({"safety_settings": []}, {"api_key": "stolen"}, {"base_url": "http://evil"}):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="gemini", messages=[{"role": "user", "content": "x"}], extra_body=extra
            )
    assert len(upstream.requests) == 1
