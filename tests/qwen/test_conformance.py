"""ChatQwen sends only what DashScope accepts: each test fails against the emulator's rules if
the worker sends what the real API refuses (tool_choice forms, forced tools and JSON output in
thinking mode, sampling ranges), and reads what it documents (cached tokens, error classes)."""

from __future__ import annotations

import pytest
from dashscope import Generation, TextEmbedding
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from langchain_chatchat import (
    BadRequestError,
    ChatQwen,
    ContextLengthError,
    QwenEmbeddings,
    RateLimitError,
    UpstreamUnavailableError,
)
from langchain_chatchat.testing import Fault, Reply
from langchain_chatchat.workers import qwen as qwen_worker
from tests.qwen.conftest import sent


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Joke(BaseModel):
    """A joke to tell the user."""

    setup: str = Field(description="question to set up the joke")
    punchline: str = Field(description="answer that resolves the joke")


def _qwen(emulator, model: str = "qwen-plus", **kwargs) -> ChatQwen:
    return ChatQwen(
        model=model,
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_retries=0,
        **kwargs,
    )


def test_any_with_one_tool_forces_it_by_name(emulator):
    result = _qwen(emulator).bind_tools([add], tool_choice="any").invoke("hi")
    assert result.tool_calls[0]["name"] == "add"
    assert sent(emulator)["parameters"]["tool_choice"] == {
        "type": "function",
        "function": {"name": "add"},
    }


def test_any_with_several_tools_is_auto_with_an_instruction(emulator):
    result = _qwen(emulator).bind_tools([add, multiply], tool_choice="any").invoke("Hello!")
    assert result.tool_calls
    parameters, messages = sent(emulator)["parameters"], sent(emulator)["input"]["messages"]
    assert parameters["tool_choice"] == "auto"
    assert messages[0] == {"role": "system", "content": qwen_worker.ANY_TOOL_INSTRUCTION}


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [("qwen-plus", {"enable_thinking": True}), ("qwen3-8b", {})],
    ids=["enable_thinking", "qwen3-thinks-by-default"],
)
def test_forced_tool_in_thinking_mode_runs_that_call_without_thinking(emulator, model, kwargs):
    llm = _qwen(emulator, model, **kwargs)
    joke = llm.with_structured_output(Joke).invoke("Tell me a joke")
    assert isinstance(joke, Joke)
    params = sent(emulator)["parameters"]
    assert params["enable_thinking"] is False
    assert params["tool_choice"] == {"type": "function", "function": {"name": "Joke"}}
    # an ordinary call keeps thinking on
    assert llm.invoke("hi").additional_kwargs["reasoning_content"]


@pytest.mark.parametrize("method", ["json_mode", "json_schema"])
def test_json_output_in_thinking_mode_turns_thinking_off(emulator, method):
    emulator.enqueue(Reply(text='{"setup": "a", "punchline": "b"}'))
    llm = _qwen(emulator, enable_thinking=True)
    assert isinstance(llm.with_structured_output(Joke, method=method).invoke("joke, json"), Joke)
    assert sent(emulator)["parameters"]["enable_thinking"] is False


def test_thinking_only_model_is_offered_the_forced_tool_with_auto(emulator):
    llm = _qwen(emulator, "qwq-plus")
    result = llm.bind_tools([add, multiply], tool_choice="add").invoke("add 2 and 3")
    params = sent(emulator)["parameters"]
    assert params["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in params["tools"]] == ["add"]
    assert result.tool_calls[0]["name"] == "add"
    with pytest.raises(BadRequestError, match="always thinks"):
        llm.with_structured_output(Joke, method="json_schema").invoke("joke")


@pytest.mark.parametrize(
    ("given", "expected"),
    [({"temperature": 2.0}, {"temperature": 1.99}), ({"top_p": 0.0}, {"top_p": 0.01})],
)
def test_sampling_values_outside_the_documented_range_are_clamped(emulator, given, expected):
    assert _qwen(emulator, **given).invoke("hi").content
    params = sent(emulator)["parameters"]
    assert {name: params[name] for name in expected} == expected


def test_top_level_cached_tokens_become_cache_read(emulator):
    usage = {"input_tokens": 10, "output_tokens": 2, "cached_tokens": 8}
    emulator.enqueue(Reply(text="ok", usage=usage))
    result = _qwen(emulator).invoke("hi")
    assert result.usage_metadata["input_token_details"] == {"cache_read": 8}


@pytest.mark.parametrize("code", ["InternalError.Algo", "ModelServingError", "ModelUnavailable"])
def test_in_stream_service_failures_are_upstream_errors(emulator, code):
    emulator.enqueue(Fault.stream_error(after_chunks=0, code=code, message="failed", status=400))
    with pytest.raises(UpstreamUnavailableError) as caught:
        list(_qwen(emulator).stream("hi"))
    assert caught.value.retryable and caught.value.code == code
    assert not isinstance(caught.value, (BadRequestError, RateLimitError))


def test_documented_endpoints():
    assert qwen_worker.INTERNATIONAL_BASE_URL == "https://dashscope-intl.aliyuncs.com/api/v1"
    assert (
        qwen_worker.workspace_base_url("ws1", "ap-southeast-1")
        == "https://ws1.ap-southeast-1.maas.aliyuncs.com/api/v1"
    )
    assert qwen_worker.COMPATIBLE_MODE_BASE_URL.endswith("/compatible-mode/v1")


def test_embedding_text_over_the_model_limit_fails_before_sending(emulator):
    embeddings = QwenEmbeddings(
        model="text-embedding-v2", api_key=emulator.api_key, base_url=emulator.base_url
    )
    with pytest.raises(ContextLengthError, match="text 0 is too long .*2048 tokens"):
        embeddings.embed_documents(["word " * 2100])
    assert emulator.requests == []


def test_embedding_emulator_enforces_the_per_text_limit(emulator):
    response = TextEmbedding.call(
        model="text-embedding-v2",
        input=["字" * 2049],
        api_key=emulator.api_key,
        base_address=emulator.base_url,
    )
    assert (response.status_code, response.code) == (400, "InvalidParameter")
    assert "2048" in response.message


def test_json_schema_where_undocumented_becomes_json_object_with_the_schema(emulator):
    llm = _qwen(emulator, "qwen-max")
    emulator.enqueue(Reply(text='{"setup": "a", "punchline": "b"}'))
    assert isinstance(llm.with_structured_output(Joke, method="json_schema").invoke("joke"), Joke)
    params, messages = sent(emulator)["parameters"], sent(emulator)["input"]["messages"]
    assert params["response_format"] == {"type": "json_object"}
    assert messages[0]["role"] == "system" and '"punchline"' in messages[0]["content"]
    _qwen(emulator, "qwen-plus").with_structured_output(Joke, method="json_schema").invoke("joke")
    assert sent(emulator)["parameters"]["response_format"]["type"] == "json_schema"


def test_emulator_refuses_json_schema_on_undocumented_models(emulator):
    response = Generation.call(
        "qwen-max",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        api_key=emulator.api_key,
        base_address=emulator.base_url,
    )
    assert (response.status_code, response.code) == (400, "InvalidParameter")
    assert "json_schema" in response.message


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_search_results_reach_response_metadata(emulator, streaming):
    llm = _qwen(
        emulator, enable_search=True, model_kwargs={"search_options": {"enable_source": True}}
    )
    if streaming:
        chunks = list(llm.stream("latest news?"))
        metadata = chunks[-1].response_metadata
        assert all("search_info" not in c.response_metadata for c in chunks[:-1])
    else:
        metadata = llm.invoke("latest news?").response_metadata
    (result,) = metadata["search_info"]["search_results"]
    assert result["url"].startswith("https://") and "latest news" in result["title"]


def test_unknown_finish_reason_is_length_with_the_raw_value(emulator):
    emulator.enqueue(Reply(text="cut", finish_reason="something_new"))
    metadata = _qwen(emulator).invoke("hi").response_metadata
    assert metadata["finish_reason"] == "length"
    assert metadata["provider_finish_reason"] == "something_new"
