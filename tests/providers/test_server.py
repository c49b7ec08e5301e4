"""Every provider served by `chatchat serve` (the same `create_app`), reached with the openai SDK
and through LangServe, each model backed by its provider's emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langserve import RemoteRunnable

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, Fault

from .support import EMBEDDING_SPECS, SPECS, connection, running

API_KEY = "sk-server-test"
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


def _params(name: str, model: str) -> dict[str, Any]:
    return {"model": model, **connection(running(name)), "max_retries": 0}


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    models = [
        {"name": f"{name}-chat", "provider": name, "params": _params(name, spec.model)}
        for name, spec in SPECS.items()
    ]
    models += [
        {
            "name": f"{name}-embed",
            "provider": name,
            "kind": "embeddings",
            "params": _params(name, spec.embedding_model),
        }
        for name, spec in EMBEDDING_SPECS.items()
    ]
    app = create_app({"server": {"api_keys": [API_KEY]}, "models": models})
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture
def client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture(params=sorted(SPECS))
def name(request) -> Iterator[str]:
    running(request.param).reset()
    yield request.param
    running(request.param).reset()


def test_chat_completion(client, name):
    reply = client.chat.completions.create(
        model=f"{name}-chat", messages=[{"role": "user", "content": "hello there"}]
    )
    assert reply.choices[0].message.content == "Hello! You said: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 7


def test_streaming_with_usage(client, name):
    stream = client.chat.completions.create(
        model=f"{name}-chat",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! You said: hello there"
    assert chunks[-1].usage.completion_tokens == 7
    assert running(name).requests[-1].body["messages"][0] == {
        "role": "system",
        "content": "be brief",
    }


def test_tool_calls(client, name):
    reply = client.chat.completions.create(
        model=f"{name}-chat",
        messages=[{"role": "user", "content": "what is the weather in Paris?"}],
        tools=[WEATHER],
    )
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and '"Paris"' in call.function.arguments
    assert reply.choices[0].finish_reason == "tool_calls"


def test_provider_errors_keep_their_meaning(client, name):
    code = {
        "zhipu": "1302",
        "minimax": "1002",
        "spark": "11202",
        "qianfan": "rpm_rate_limit_exceeded",
        "ark": "RateLimitExceeded",
        "moonshot": "rate_limit_reached_error",
    }.get(name, "rate_limit_exceeded")
    running(name).enqueue(Fault.http(429, code, "slow down"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model=f"{name}-chat", messages=[{"role": "user", "content": "hi"}]
        )


@pytest.mark.parametrize("embed_name", sorted(EMBEDDING_SPECS))
def test_embeddings(client, embed_name):
    running(embed_name).reset()
    result = client.embeddings.create(
        model=f"{embed_name}-embed", input=["first text", "second text"]
    )
    assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) > 0


def test_langserve_route(server_url, name):
    remote = RemoteRunnable(
        f"{server_url}/{name}-chat", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert remote.invoke("hello there").content == "Hello! You said: hello there"
