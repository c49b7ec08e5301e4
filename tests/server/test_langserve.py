"""The LangServe routes (/<name>/...) with RemoteRunnable: same models, second protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langserve import RemoteRunnable

from langchain_chatchat.testing import Fault, Reply, ToolCallReply
from tests.server.conftest import API_KEY, sent

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def remote(server_url, emulator) -> Iterator[RemoteRunnable]:
    runnable = RemoteRunnable(f"{server_url}/qwen-plus", headers=AUTH)
    yield runnable
    runnable.sync_client.close()


@pytest.fixture
async def aremote(server_url, emulator) -> AsyncIterator[RemoteRunnable]:
    """Closes its async client on the test's loop (langserve's finalizer would use a dead one)."""
    runnable = RemoteRunnable(f"{server_url}/qwen-plus", headers=AUTH)
    yield runnable
    await runnable.async_client.aclose()


def test_invoke_round_trips_content_and_usage(remote, emulator):
    emulator.enqueue(Reply(text="Bonjour!", usage={"input_tokens": 5, "output_tokens": 2}))
    reply = remote.invoke([HumanMessage("Say hello in French")])
    assert isinstance(reply, AIMessage)
    assert reply.content == "Bonjour!"
    assert reply.usage_metadata == {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
    assert reply.response_metadata["finish_reason"] == "stop"


def test_invoke_round_trips_tool_calls_both_ways(remote, emulator):
    emulator.enqueue(
        Reply(tool_calls=[ToolCallReply("get_weather", {"city": "Paris"}, id="call_9")])
    )
    reply = remote.invoke("weather in Paris?")
    assert reply.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_9", "type": "tool_call"}
    ]

    final = remote.invoke(
        [HumanMessage("weather in Paris?"), reply, ToolMessage("sunny", tool_call_id="call_9")]
    )
    assert final.content == "The result is sunny."
    upstream = sent(emulator)["input"]["messages"]
    assert upstream[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert upstream[2]["role"] == "tool"


def test_batch(remote):
    replies = remote.batch(["one", "two"])
    assert [reply.content for reply in replies] == ["Hello! You said: one", "Hello! You said: two"]


def test_stream(remote, emulator):
    emulator.enqueue(Reply(text="a b c", usage={"input_tokens": 1, "output_tokens": 3}))
    chunks = list(remote.stream("letters"))
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    assert len(chunks) > 1
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.content == "a b c"
    assert merged.usage_metadata["total_tokens"] == 4


async def test_astream_with_tool_call_chunks(aremote, emulator):
    emulator.enqueue(Reply(tool_calls=[ToolCallReply("lookup", {"q": "x"}, id="call_2")]))
    merged = None
    async for chunk in aremote.astream("look it up"):
        merged = chunk if merged is None else merged + chunk
    assert merged.tool_calls == [
        {"name": "lookup", "args": {"q": "x"}, "id": "call_2", "type": "tool_call"}
    ]


async def test_ainvoke(aremote):
    assert (await aremote.ainvoke("hi")).content == "Hello! You said: hi"


def test_embeddings_route(server_url):
    remote = RemoteRunnable(f"{server_url}/text-embedding-v3", headers=AUTH)
    vectors = remote.invoke(["a", "b"])
    single = remote.invoke("a")  # one text, one vector: like embed_query
    batched = remote.batch(["a", ["a", "b"]])
    remote.sync_client.close()
    assert len(vectors) == 2 and len(vectors[0]) == 1024
    assert single == vectors[0]
    assert batched == [vectors[0], vectors]


async def test_embeddings_route_async_single_text(server_url):
    remote = RemoteRunnable(f"{server_url}/text-embedding-v3", headers=AUTH)
    vector = await remote.ainvoke("a")
    await remote.async_client.aclose()
    assert len(vector) == 1024 and isinstance(vector[0], float)


def test_embeddings_route_refuses_other_input(server_url):
    response = httpx.post(f"{server_url}/text-embedding-v3/invoke", json={"input": 5}, headers=AUTH)
    assert response.status_code in (400, 422)


def test_upstream_error_reaches_remote_runnable_as_status(remote, emulator):
    emulator.enqueue(Fault.http(429, "Throttling.RateQuota", "slow down"))
    with pytest.raises(httpx.HTTPStatusError) as caught:
        remote.invoke("hi")
    assert caught.value.response.status_code == 429


def test_playground_is_served(server_url):
    response = httpx.get(f"{server_url}/qwen-plus/playground/", headers=AUTH)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]


@pytest.mark.parametrize(
    ("endpoint", "content", "param"),
    [
        ("invoke", b'{"input": "hi", "config": null}', "config"),
        ("stream", b'{"input": "hi", "config": 3}', "config"),
        ("batch", b'{"inputs": "not a list"}', "inputs"),
        ("batch", b'{"inputs": ["fine", {"unexpected": 1}]}', "inputs[1]"),
        ("invoke", b'{"input": "\xff\xfe"}', None),
    ],
)
def test_malformed_langserve_bodies_are_400_in_openai_shape(server_url, endpoint, content, param):
    # LangServe 0.3 itself answers each of these with a 500; the server checks them first.
    response = httpx.post(
        f"{server_url}/qwen-plus/{endpoint}",
        content=content,
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
