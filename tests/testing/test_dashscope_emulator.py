"""The DashScope emulator, driven through the official `dashscope` SDK (sync and aiohttp paths)."""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import requests
from aiohttp import ClientPayloadError
from dashscope import AioGeneration, Generation, TextEmbedding
from dashscope.api_entities.aio_session import close_shared_aio_session
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from langchain_chatchat.testing import (
    BackgroundServer,
    DashScopeEmulator,
    Fault,
    Reply,
    ToolCallReply,
    split_tokens,
)

USER = [{"role": "user", "content": "hi there"}]
MAGIC = {
    "type": "function",
    "function": {
        "name": "magic_function",
        "description": "Apply a magic function to an input.",
        "parameters": {
            "type": "object",
            "properties": {
                "input": {"type": "integer", "exclusiveMinimum": -1000, "exclusiveMaximum": 1000}
            },
            "required": ["input"],
        },
    },
}
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


@pytest.fixture
def emu(dashscope_emulator: DashScopeEmulator) -> DashScopeEmulator:
    return dashscope_emulator


@pytest.fixture
async def aio_session() -> AsyncIterator[None]:
    """The SDK keeps one aiohttp session per event loop; close it before the loop goes."""
    yield
    await close_shared_aio_session()


def sdk(emu: DashScopeEmulator, **extra: Any) -> dict[str, Any]:
    return {"api_key": emu.api_key, "base_address": emu.base_url, **extra}


def content(response: Any) -> str:
    return response.output.choices[0].message.content


# -- text generation -------------------------------------------------------------------------


def test_message_format_non_stream(emu: DashScopeEmulator) -> None:
    response = Generation.call("qwen-plus", messages=USER, result_format="message", **sdk(emu))

    assert response.status_code == 200
    assert content(response) == "Hello! You said: hi there"
    assert response.output.choices[0].finish_reason == "stop"
    assert response.usage == {"input_tokens": 2, "output_tokens": 7, "total_tokens": 9}
    assert response.request_id == emu.last_request_id
    (recorded,) = emu.requests
    assert (
        recorded.method == "POST"
        and recorded.path == "/api/v1/services/aigc/text-generation/generation"
    )
    assert recorded.headers["authorization"] == f"Bearer {emu.api_key}"
    assert recorded.body is not None and recorded.body["input"]["messages"] == USER
    assert recorded.disconnected_at is None
    assert emu.api_key not in repr(recorded)


def test_text_format_is_the_default_for_qwen_plus(emu: DashScopeEmulator) -> None:
    response = Generation.call("qwen-plus", messages=USER, **sdk(emu))

    assert response.output.text == "Hello! You said: hi there"
    assert response.output.finish_reason == "stop"


def test_stream_incremental(emu: DashScopeEmulator) -> None:
    chunks = list(
        Generation.call(
            "qwen-plus",
            messages=USER,
            stream=True,
            incremental_output=True,
            result_format="message",
            **sdk(emu),
        )
    )

    pieces = [content(c) for c in chunks]
    assert "".join(pieces) == "Hello! You said: hi there" and len(chunks) == 8
    assert [c.output.choices[0].finish_reason for c in chunks] == ["null"] * 7 + ["stop"]
    assert [c.usage["output_tokens"] for c in chunks] == [1, 2, 3, 4, 5, 6, 7, 7]
    assert emu.requests[0].headers["x-dashscope-sse"] == "enable"


def test_stream_is_cumulative_by_default(emu: DashScopeEmulator) -> None:
    texts = [
        c.output.text for c in Generation.call("qwen-plus", messages=USER, stream=True, **sdk(emu))
    ]

    assert texts[0] == "Hello" and texts[-1] == "Hello! You said: hi there"
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))


def test_sdk_asks_incremental_and_merges_when_told_incremental_output_false(
    emu: DashScopeEmulator,
) -> None:
    texts = [
        content(c)
        for c in Generation.call(
            "qwen-plus",
            messages=USER,
            stream=True,
            incremental_output=False,
            result_format="message",
            **sdk(emu),
        )
    ]

    assert emu.requests[0].body["parameters"]["incremental_output"] is True
    assert texts[-1] == "Hello! You said: hi there"


def test_scripted_reply_forced_cumulative(emu: DashScopeEmulator) -> None:
    emu.enqueue(
        Reply(text="ha ha ha", cumulative=True, usage={"input_tokens": 9, "output_tokens": 3})
    )

    chunks = list(
        Generation.call(
            "qwen-plus", messages=USER, stream=True, incremental_output=True, **sdk(emu)
        )
    )

    assert [c.output.text for c in chunks] == ["ha", "ha ha", "ha ha ha", "ha ha ha"]
    assert chunks[-1].usage == {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}
    assert emu.pending == 0


async def test_aio_generation(emu: DashScopeEmulator, aio_session: None) -> None:
    response = await AioGeneration.call(
        "qwen-plus", messages=USER, result_format="message", **sdk(emu)
    )
    assert content(response) == "Hello! You said: hi there"

    stream = await AioGeneration.call(
        "qwen-plus",
        messages=USER,
        stream=True,
        incremental_output=True,
        result_format="message",
        **sdk(emu),
    )
    pieces = [content(c) async for c in stream]
    assert "".join(pieces) == "Hello! You said: hi there" and len(pieces) == 8


def test_stop_and_max_tokens(emu: DashScopeEmulator) -> None:
    stopped = Generation.call(
        "qwen-plus", messages=USER, stop=["said"], result_format="message", **sdk(emu)
    )
    cut = Generation.call(
        "qwen-plus", messages=USER, max_tokens=3, result_format="message", **sdk(emu)
    )

    assert content(stopped) == "Hello! You " and stopped.output.choices[0].finish_reason == "stop"
    assert content(cut) == "Hello! You" and cut.output.choices[0].finish_reason == "length"


def test_reasoning_stream(emu: DashScopeEmulator) -> None:
    emu.enqueue(Reply(text="Blue light scatters.", reasoning="Rayleigh scattering explains it."))

    chunks = list(
        Generation.call(
            "qwen-plus",
            messages=USER,
            stream=True,
            incremental_output=True,
            result_format="message",
            enable_thinking=True,
            **sdk(emu),
        )
    )

    messages = [c.output.choices[0].message for c in chunks]
    assert "".join(m.reasoning_content for m in messages) == "Rayleigh scattering explains it."
    assert "".join(m.content for m in messages) == "Blue light scatters."
    assert chunks[-1].usage["output_tokens_details"] == {"reasoning_tokens": 5}
    assert chunks[-1].usage["output_tokens"] == 9


def test_default_reasoning_and_thinking_rules(emu: DashScopeEmulator) -> None:
    chunks = list(
        Generation.call(
            "qwen3-8b", messages=USER, stream=True, **sdk(emu)
        )  # thinking on by default
    )
    assert "".join(c.output.choices[0].message.reasoning_content for c in chunks).startswith(
        "The user said"
    )

    non_stream = Generation.call("qwen-plus", messages=USER, enable_thinking=True, **sdk(emu))
    cumulative = list(
        Generation.call(
            "qwen-plus",
            messages=USER,
            stream=True,
            enable_thinking=True,
            result_format="message",
            **sdk(emu),
        )
    )
    unsupported = Generation.call("qwen-max", messages=USER, enable_thinking=True, **sdk(emu))

    assert (non_stream.status_code, non_stream.code) == (400, "InvalidParameter")
    assert (
        non_stream.message
        == "parameter.enable_thinking must be set to false for non-streaming calls"
    )
    assert [(c.status_code, c.code) for c in cumulative] == [(400, "InvalidParameter")]
    assert "incremental_output" in cumulative[0].message
    assert unsupported.code == "InvalidParameter.NotSupportEnableThinking"


# -- tools and structured output ---------------------------------------------------------------


def test_forced_tool_call_non_stream(emu: DashScopeEmulator) -> None:
    question = [
        {"role": "user", "content": "What is the value of magic_function(3)? Use the tool."}
    ]
    response = Generation.call(
        "qwen-plus",
        messages=question,
        tools=[MAGIC, WEATHER],
        tool_choice={"type": "function", "function": {"name": "magic_function"}},
        result_format="message",
        **sdk(emu),
    )

    choice = response.output.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call["function"]["name"] == "magic_function" and json.loads(
        call["function"]["arguments"]
    ) == {"input": 3}
    assert call["id"].startswith("call_") and call["type"] == "function"


def test_auto_tool_call_stream_then_tool_result(emu: DashScopeEmulator) -> None:
    question = {"role": "user", "content": "What is the weather in San Francisco, CA?"}
    chunks = list(
        Generation.call(
            "qwen-plus",
            messages=[question],
            tools=[WEATHER],
            stream=True,
            incremental_output=True,
            **sdk(emu),
        )
    )

    deltas = [d for c in chunks for d in c.output.choices[0].message.get("tool_calls") or []]
    assert deltas[0]["function"]["name"] == "get_weather" and deltas[0]["id"].startswith("call_")
    assert all(d["id"] == "" and "name" not in d["function"] for d in deltas[1:])
    arguments = "".join(d["function"].get("arguments", "") for d in deltas)
    assert json.loads(arguments) == {"location": "San Francisco, CA"}
    assert chunks[-1].output.choices[0].finish_reason == "tool_calls"

    call = {
        "id": deltas[0]["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    history = [
        question,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "It's sunny.", "tool_call_id": call["id"]},
    ]
    answer = Generation.call("qwen-plus", messages=history, tools=[WEATHER], **sdk(emu))
    assert content(answer) == "The result is It's sunny."


def test_scripted_tool_calls_cumulative_stream(emu: DashScopeEmulator) -> None:
    emu.enqueue(Reply(tool_calls=[ToolCallReply("add", {"a": 2, "b": 3}, id="call_1")]))

    chunks = list(
        Generation.call("qwen-plus", messages=USER, tools=[MAGIC], stream=True, **sdk(emu))
    )

    final = chunks[-1].output.choices[0]
    assert final.finish_reason == "tool_calls"
    assert final.message.tool_calls == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
        }
    ]


def test_unicode_survives_tool_arguments(emu: DashScopeEmulator) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "unicode_customer",
            "parameters": {
                "type": "object",
                "properties": {
                    "customer_name": {"type": "string"},
                    "description": {"type": "string"},
                },
                "required": ["customer_name", "description"],
            },
        },
    }
    question = "Create a customer named '你好啊集团' (Hello Group) - a Chinese technology company"
    response = Generation.call(
        "qwen-plus",
        messages=[{"role": "user", "content": question}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "unicode_customer"}},
        **sdk(emu),
    )

    arguments = response.output.choices[0].message.tool_calls[0]["function"]["arguments"]
    assert "你好啊集团" in arguments  # not \\u-escaped
    assert json.loads(arguments)["customer_name"] == "你好啊集团"


def test_json_modes(emu: DashScopeEmulator) -> None:
    ask = (
        "Tell me a joke about cats. Return the result as a JSON with 'setup' and 'punchline' keys."
    )
    schema = {
        "type": "object",
        "properties": {"setup": {"type": "string"}, "rating": {"type": "integer", "minimum": 5}},
        "required": ["setup", "rating"],
    }
    as_object = Generation.call(
        "qwen-plus",
        messages=[{"role": "user", "content": ask}],
        response_format={"type": "json_object"},
        **sdk(emu),
    )
    as_schema = Generation.call(
        "qwen-plus",
        messages=USER,
        response_format={"type": "json_schema", "json_schema": {"name": "joke", "schema": schema}},
        **sdk(emu),
    )
    no_json_word = Generation.call(
        "qwen-plus", messages=USER, response_format={"type": "json_object"}, **sdk(emu)
    )

    assert set(json.loads(as_object.output.text)) == {"setup", "punchline"}
    assert json.loads(as_schema.output.text) == {"setup": "sample setup", "rating": 5}
    assert (
        no_json_word.status_code == 400 and "must contain the word 'json'" in no_json_word.message
    )


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "messages", "params", "message"),
    [
        ("qwen-nope", USER, {}, "Model not exist."),
        ("text-embedding-v3", USER, {}, "url error, please check url!"),
        (
            "qwen-plus",
            [{"role": "system", "content": "Be brief."}],
            {},
            "The input messages do not contain",
        ),
        (
            "qwen-plus",
            [USER[0], {"role": "system", "content": "late"}],
            {},
            "only supported in messages[0]",
        ),
        (
            "qwen-plus",
            [USER[0], {"role": "tool", "content": "5"}],
            {},
            'role "tool" must be a response',
        ),
        (
            "qwen-plus",
            [{"role": "user", "content": [{"text": "hi"}]}],
            {},
            "input content must be a string.",
        ),
        ("qwen-plus", [{"role": "user"}], {}, "The content field is a required field."),
        ("qwen-plus", USER, {"temperature": 2.0}, "Temperature should be in [0.0, 2.0)"),
        ("qwen-plus", USER, {"top_p": 0}, "Range of top_p should be (0.0, 1.0]"),
        ("qwen-plus", USER, {"max_tokens": 0}, "Range of max_tokens should be [1, 8192]"),
        (
            "qwen-plus",
            USER,
            {"tool_choice": "any", "tools": [MAGIC]},
            "tool_choice is one of the strings",
        ),
        (
            "qwen-plus",
            USER,
            {"tool_choice": "required", "tools": [MAGIC]},
            'tool_choice is one of the strings that should be ["none", "auto"]',
        ),
        (
            "qwen-plus",
            USER,
            {"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": [MAGIC]},
            "tool_choice should be",
        ),
        (
            "qwen-plus",
            USER,
            {
                "tool_choice": {"type": "function", "function": {"name": "magic_function"}},
                "tools": [MAGIC],
                "enable_thinking": True,
                "stream": True,
                "incremental_output": True,
                "result_format": "message",
            },
            "when enable_thinking is true",
        ),
        (
            "qwen-plus",
            USER,
            {"response_format": {"type": "yaml"}},
            "Unknown format of response_format",
        ),
        ("qwq-plus", USER, {}, "This model only support stream mode"),
    ],
)
def test_documented_invalid_parameters(
    emu: DashScopeEmulator,
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    message: str,
) -> None:
    response = Generation.call(model, messages=messages, **sdk(emu, **params))
    if params.get("stream"):
        (response,) = list(response)

    assert (response.status_code, response.code) == (400, "InvalidParameter")
    assert message in response.message
    assert response.request_id == emu.last_request_id


def test_empty_messages_and_input_length() -> None:
    with DashScopeEmulator(max_input_tokens=5) as emu:
        body = {"model": "qwen-plus", "input": {"messages": []}, "parameters": {}}
        headers = {"Authorization": f"Bearer {emu.api_key}"}
        empty = httpx.post(
            f"{emu.base_url}/services/aigc/text-generation/generation", json=body, headers=headers
        )
        long = Generation.call(
            "qwen-plus",
            messages=[{"role": "user", "content": "one two three four five six"}],
            **sdk(emu),
        )

    assert empty.status_code == 400 and empty.json()["message"] == "[] is too short"
    assert empty.headers["content-type"] == "application/json"
    assert long.message == "Range of input length should be [1, 5]"


def test_wrong_api_key(emu: DashScopeEmulator) -> None:
    response = Generation.call(
        "qwen-plus", messages=USER, api_key="sk-wrong", base_address=emu.base_url
    )
    streamed = list(
        Generation.call(
            "qwen-plus", messages=USER, api_key="", base_address=emu.base_url, stream=True
        )
    )

    assert (response.status_code, response.code, response.message) == (
        401,
        "InvalidApiKey",
        "Invalid API-key provided.",
    )
    assert [(r.status_code, r.code) for r in streamed] == [(401, "InvalidApiKey")]


# -- scripted faults -------------------------------------------------------------------------


def test_scripted_http_error_then_reply(emu: DashScopeEmulator) -> None:
    emu.enqueue(
        Fault.http(
            429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."
        )
    )
    emu.enqueue(Reply(text="finally"))

    throttled = Generation.call("qwen-plus", messages=USER, **sdk(emu))
    retried = Generation.call("qwen-plus", messages=USER, **sdk(emu))

    assert (throttled.status_code, throttled.code) == (429, "Throttling.RateQuota")
    assert throttled.request_id == emu.requests[0].request_id
    assert retried.output.text == "finally"


def test_in_stream_error(emu: DashScopeEmulator) -> None:
    emu.enqueue(
        Fault.stream_error(
            2, "DataInspectionFailed", "Output data may contain inappropriate content.", 400
        )
    )

    chunks = list(
        Generation.call(
            "qwen-plus", messages=USER, stream=True, incremental_output=True, **sdk(emu)
        )
    )

    assert [c.output.text for c in chunks[:2]] == ["Hello", "!"]
    assert chunks[-1].status_code != 200 and chunks[-1].code == "DataInspectionFailed"
    assert chunks[-1].request_id == emu.last_request_id and len(chunks) == 3


async def test_in_stream_error_aio(emu: DashScopeEmulator, aio_session: None) -> None:
    emu.enqueue(Fault.stream_error(1, "InternalError", "An internal error has occured."))

    stream = await AioGeneration.call(
        "qwen-plus", messages=USER, stream=True, incremental_output=True, **sdk(emu)
    )
    chunks = [c async for c in stream]

    assert [c.status_code for c in chunks][:1] == [200] and chunks[-1].code == "InternalError"


def test_dropped_connection(emu: DashScopeEmulator) -> None:
    emu.enqueue(
        Reply(text="one two three four", drop_after_chunks=2),
        Reply(text="cut", drop_after_chunks=0),
    )
    seen = []

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in Generation.call(
            "qwen-plus", messages=USER, stream=True, incremental_output=True, **sdk(emu)
        ):
            seen.append(chunk.output.text)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        Generation.call("qwen-plus", messages=USER, **sdk(emu))

    assert seen == ["one", " two"]


async def test_dropped_connection_aio(emu: DashScopeEmulator, aio_session: None) -> None:
    emu.enqueue(Reply(text="one two three four", drop_after_chunks=1))

    stream = await AioGeneration.call(
        "qwen-plus", messages=USER, stream=True, incremental_output=True, **sdk(emu)
    )
    with pytest.raises(ClientPayloadError):
        async for _ in stream:
            pass


def test_hang_makes_the_client_time_out(emu: DashScopeEmulator) -> None:
    emu.enqueue(Fault.hang(5))
    started = time.monotonic()

    with pytest.raises(requests.exceptions.ReadTimeout):
        Generation.call("qwen-plus", messages=USER, request_timeout=0.3, **sdk(emu))

    left = time.monotonic()
    assert left - started < 1
    deadline = left + 1
    while emu.requests[0].disconnected_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (
        emu.requests[0].disconnected_at is not None and emu.requests[0].disconnected_at - left < 0.5
    )


async def test_slow_first_chunk_times_out_aio(emu: DashScopeEmulator, aio_session: None) -> None:
    emu.enqueue(Reply(text="late", first_chunk_delay=5))

    stream = await AioGeneration.call(
        "qwen-plus", messages=USER, stream=True, request_timeout=0.3, **sdk(emu)
    )
    with pytest.raises(TimeoutError):
        async for _ in stream:
            pass


def test_disconnect_is_recorded_when_the_client_stops_reading(emu: DashScopeEmulator) -> None:
    emu.enqueue(Reply(text="a b c d e f g h", chunk_delay=0.05))
    body = {
        "model": "qwen-plus",
        "input": {"messages": USER},
        "parameters": {"incremental_output": True},
    }
    headers = {"Authorization": f"Bearer {emu.api_key}", "X-DashScope-SSE": "enable"}

    url = f"{emu.base_url}/services/aigc/text-generation/generation"
    with httpx.stream("POST", url, json=body, headers=headers) as response:
        lines = response.iter_lines()
        first = [next(lines) for _ in range(5)]
    left = time.monotonic()

    assert first[:3] == ["id:1", "event:result", ":HTTP_STATUS/200"] and first[3].startswith(
        "data:{"
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    deadline = left + 1
    while emu.requests[0].disconnected_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (
        emu.requests[0].disconnected_at is not None and emu.requests[0].disconnected_at - left < 0.5
    )


# -- embeddings --------------------------------------------------------------------------------


def test_embeddings(emu: DashScopeEmulator) -> None:
    texts = ["the cat sat", "the cat ran", "stock market news"]
    v3 = TextEmbedding.call("text-embedding-v3", input=texts, text_type="query", **sdk(emu))
    again = TextEmbedding.call("text-embedding-v3", input="the cat sat", **sdk(emu))
    v1 = TextEmbedding.call("text-embedding-v1", input="hello", **sdk(emu))
    small = TextEmbedding.call("text-embedding-v4", input="hello", dimension=64, **sdk(emu))

    vectors = [e["embedding"] for e in v3.output["embeddings"]]
    assert [e["text_index"] for e in v3.output["embeddings"]] == [0, 1, 2]
    assert [len(v) for v in vectors] == [1024] * 3 and math.isclose(
        sum(x * x for x in vectors[0]), 1.0
    )
    assert again.output["embeddings"][0]["embedding"] == vectors[0]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert v3.usage == {"total_tokens": 9}
    assert len(v1.output["embeddings"][0]["embedding"]) == 1536
    assert len(small.output["embeddings"][0]["embedding"]) == 64
    assert emu.requests[0].body["parameters"]["text_type"] == "query"
    assert emu.requests[0].path == "/api/v1/services/embeddings/text-embedding/text-embedding"


@pytest.mark.parametrize(("model", "limit"), [("text-embedding-v2", 25), ("text-embedding-v4", 10)])
def test_embedding_batch_limit(emu: DashScopeEmulator, model: str, limit: int) -> None:
    ok = TextEmbedding.call(model, input=["x"] * limit, **sdk(emu))
    too_many = TextEmbedding.call(model, input=["x"] * (limit + 1), **sdk(emu))

    assert ok.status_code == 200 and len(ok.output["embeddings"]) == limit
    assert (too_many.status_code, too_many.code) == (400, "InvalidParameter")
    assert (
        too_many.message
        == f"Value error, batch size is invalid, it should not be larger than {limit}."
    )


def test_embedding_faults_and_bad_dimension(emu: DashScopeEmulator) -> None:
    emu.enqueue(Fault.http(500, "InternalError", "An internal error has occured."))

    failed = TextEmbedding.call("text-embedding-v3", input="x", **sdk(emu))
    bad_dimension = TextEmbedding.call("text-embedding-v1", input="x", dimension=512, **sdk(emu))

    assert (failed.status_code, failed.code) == (500, "InternalError")
    assert bad_dimension.status_code == 400


# -- scripting and plumbing --------------------------------------------------------------------


def test_requests_are_recorded_and_reset(emu: DashScopeEmulator) -> None:
    emu.enqueue(Reply(text="first"), Reply(text="second"))
    texts = [Generation.call("qwen-plus", messages=USER, **sdk(emu)).output.text for _ in range(3)]

    assert texts == ["first", "second", "Hello! You said: hi there"]
    assert len(emu.requests) == 3 and len({r.request_id for r in emu.requests}) == 3
    assert emu.requests[0].received_at <= emu.requests[1].received_at
    emu.enqueue(Reply(text="unused"))
    emu.reset()
    assert emu.requests == [] and emu.pending == 0


def test_base_url_via_module_setting(
    emu: DashScopeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dashscope

    monkeypatch.setattr(dashscope, "base_http_api_url", emu.base_url)
    assert Generation.call("qwen-plus", messages=USER, api_key=emu.api_key).status_code == 200


def test_background_server_starts_and_stops_fast() -> None:
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    started = time.monotonic()
    with BackgroundServer(app) as server:
        assert httpx.get(server.url).text == "ok"
    assert time.monotonic() - started < 0.5
    assert not server.running


def test_tokenizer_round_trips() -> None:
    text = "Hello, 世界! It's  fine.  "
    assert "".join(split_tokens(text)) == text
    assert split_tokens("你好") == ["你", "好"]
