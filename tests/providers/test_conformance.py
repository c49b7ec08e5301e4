"""Each OpenAI-style provider class sends what the real API accepts. The emulator profiles refuse
what the providers document as refused (with the provider's status, code and message), so each
test here fails if the worker sends the refused form; the `*_emulator_refuses_*` tests pin the
rules themselves, driven through the official SDKs where one exists."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkBadRequestError
from zhipuai import ZhipuAI

from langchain_chatchat.chat_models.azure import ChatAzureOpenAI
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.embeddings.azure import AzureOpenAIEmbeddings
from langchain_chatchat.testing import Reply
from langchain_chatchat.testing.openai_compatible import OpenAICompatibleEmulator
from langchain_chatchat.workers.errors import (
    BadRequestError,
    ContextLengthError,
    UpstreamUnavailableError,
)
from langchain_chatchat.workers.sampling import ANY_TOOL_INSTRUCTION

from .support import SPECS, chat_for, embeddings_for, running, sent

USER = [{"role": "user", "content": "hi"}]


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return "sunny"


@tool
def get_time(zone: str) -> str:
    """Get the time in a time zone."""
    return "noon"


class Joke(BaseModel):
    """A joke to tell the user."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")


@pytest.fixture(autouse=True)
def clean():
    for name in SPECS:
        running(name).reset()
    yield


# -- forced tools in thinking mode (DeepSeek) ------------------------------------------------------
def test_deepseek_forced_tool_turns_switchable_thinking_off():
    llm = chat_for("deepseek", model_kwargs={"thinking": {"type": "enabled"}})
    joke = llm.with_structured_output(Joke).invoke("tell me a joke")
    assert isinstance(joke, Joke)
    body = sent(running("deepseek"))
    assert body["thinking"] == {"type": "disabled"}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Joke"}}


def test_deepseek_reasoner_is_offered_only_the_forced_tool():
    llm = chat_for("deepseek", model="deepseek-reasoner")
    result = llm.bind_tools([get_weather, get_time], tool_choice="get_time").invoke(
        "what time is it in UTC?"
    )
    body = sent(running("deepseek"))
    assert body["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time"]
    assert result.tool_calls[0]["name"] == "get_time"
    result = llm.bind_tools([get_weather, get_time], tool_choice="any").invoke("hi")
    body = sent(running("deepseek"))
    assert body["tool_choice"] == "auto" and len(body["tools"]) == 2
    assert body["messages"][0] == {"role": "system", "content": ANY_TOOL_INSTRUCTION}
    assert result.tool_calls


def test_deepseek_emulator_refuses_forced_tools_while_thinking():
    emulator = running("deepseek")
    client = openai.OpenAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    tool_spec = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError, match="thinking mode"):
        client.chat.completions.create(
            model="deepseek-reasoner", messages=USER, tools=[tool_spec], tool_choice="required"
        )


# -- Kimi thinking models: reasoning_content on tool-call turns ----------------------------------------
def test_kimi_thinking_model_gets_reasoning_back_on_tool_turns():
    llm = chat_for("moonshot", model="kimi-k2.5").bind_tools([get_weather])
    question = HumanMessage("what is the weather in Paris?")
    first = llm.invoke([question])
    assert first.tool_calls and first.additional_kwargs["reasoning_content"]
    answer = llm.invoke(
        [question, first, ToolMessage("sunny", tool_call_id=first.tool_calls[0]["id"])]
    )
    assert answer.content == "The result is sunny."
    history = sent(running("moonshot"))["messages"]
    assert history[1]["reasoning_content"] == first.additional_kwargs["reasoning_content"]


def test_kimi_emulator_refuses_a_tool_turn_without_reasoning():
    emulator = running("moonshot")
    client = openai.OpenAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="kimi-k2-thinking", messages=messages)
    assert "reasoning_content is missing in assistant tool call message at index 1" in str(
        raised.value
    )
    # thinking switched off: no reasoning needed
    client.chat.completions.create(
        model="kimi-k2.5", messages=messages, extra_body={"thinking": {"type": "disabled"}}
    )


def test_kimi_thinking_switch_and_max_completion_tokens():
    llm = chat_for("moonshot", model="kimi-k2.5", thinking=False, max_tokens=50)
    assert not llm.invoke("hi").additional_kwargs.get("reasoning_content")
    body = sent(running("moonshot"))
    assert body["thinking"] == {"type": "disabled"}
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    chat_for("moonshot", model="moonshot-v1-8k", max_tokens=50).invoke("hi")
    assert sent(running("moonshot"))["max_tokens"] == 50


# -- sampling ranges: clamped to what each API accepts ------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "model", "given", "expected"),
    [
        ("zhipu", None, {"temperature": 1.5, "top_p": 0.0}, {"temperature": 1.0, "top_p": 0.01}),
        ("qianfan", None, {"temperature": 0.0}, {"temperature": 0.01}),
        ("minimax", None, {"temperature": 0.0, "top_p": 0.0}, {"temperature": 0.01, "top_p": 0.01}),
        ("baichuan", None, {"temperature": 1.3, "top_p": 1.0}, {"temperature": 1.0, "top_p": 0.99}),
    ],
)
def test_sampling_values_are_clamped_into_the_documented_range(provider, model, given, expected):
    llm = chat_for(provider, **({"model": model} if model else {}), **given)
    assert llm.invoke("hi").content
    body = sent(running(provider))
    assert {name: body[name] for name in expected} == expected


def test_qianfan_non_ernie_models_keep_their_values():
    chat_for("qianfan", model="deepseek-v3", temperature=0.0).invoke("hi")
    assert sent(running("qianfan"))["temperature"] == 0.0


def test_zhipu_emulator_refuses_out_of_range_sampling_with_code_1210():
    emulator = running("zhipu")
    client = ZhipuAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    # the SDK clamps temperature and top_p itself, so the raw values go in extra_body
    with pytest.raises(Exception) as raised:
        client.chat.completions.create(
            model="glm-4-flash", messages=USER, extra_body={"temperature": 1.5}
        )
    assert "1210" in str(raised.value)


@pytest.mark.parametrize(
    ("provider", "model", "params", "status", "code"),
    [
        ("qianfan", "ernie-4.0-turbo-8k", {"temperature": 0}, 400, "invalid_argument"),
        ("minimax", "MiniMax-Text-01", {"top_p": 0}, 200, 2013),
        ("baichuan", "Baichuan4-Turbo", {"top_p": 1}, 400, "invalid_request_error"),
    ],
)
def test_emulators_refuse_out_of_range_sampling(provider, model, params, status, code):
    emulator = running(provider)  # no official SDK for these three: the raw HTTP request
    path = "/text/chatcompletion_v2" if provider == "minimax" else "/chat/completions"
    response = httpx.post(
        emulator.base_url + path,
        json={"model": model, "messages": USER, **params},
        headers={"Authorization": f"Bearer {emulator.api_key}"},
    )
    body = response.json()
    error = body["base_resp"]["status_code"] if provider == "minimax" else body["error"]["code"]
    assert (response.status_code, error) == (status, code)


# -- Spark tool_calls_switch --------------------------------------------------------------------------
def test_spark_turns_tool_calls_on():
    result = chat_for("spark").bind_tools([get_weather]).invoke("what is the weather in Paris?")
    assert sent(running("spark"))["tool_calls_switch"] is True
    assert result.tool_calls[0]["name"] == "get_weather"


def test_spark_emulator_writes_tool_calls_as_text_without_the_switch():
    emulator = running("spark")
    client = openai.OpenAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    tool_spec = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
    messages = [{"role": "user", "content": "what is the weather in Paris?"}]
    reply = client.chat.completions.create(
        model="generalv3.5", messages=messages, tools=[tool_spec]
    )
    message = reply.choices[0].message
    assert not message.tool_calls and json.loads(message.content)["name"] == "get_weather"


# -- Ark: forced tools only on doubao-seed-1.6+ ---------------------------------------------------------
def test_ark_older_models_get_the_forced_tool_alone_with_auto():
    llm = chat_for("ark", model="doubao-1-5-pro-32k-250115")
    llm.bind_tools([get_weather, get_time], tool_choice="get_weather").invoke("hello")
    body = sent(running("ark"))
    assert body["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    chat_for("ark").bind_tools([get_weather], tool_choice="any").invoke("hello")
    assert sent(running("ark"))["tool_choice"] == "required"


def test_ark_emulator_refuses_required_on_older_models():
    emulator = running("ark")
    client = Ark(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    tool_spec = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(ArkBadRequestError, match="tool_choice"):
        client.chat.completions.create(
            model="doubao-1-5-pro-32k-250115",
            messages=USER,
            tools=[tool_spec],
            tool_choice="required",
        )


def test_ark_thinking_controls():
    llm = chat_for("ark", thinking="auto", reasoning_effort="low")
    llm.invoke("hi")
    body = sent(running("ark"))
    assert body["thinking"] == {"type": "auto"} and body["reasoning_effort"] == "low"


# -- reasoning models on Azure / OpenAI -------------------------------------------------------------------
def test_azure_reasoning_deployment_gets_max_completion_tokens():
    llm = chat_for("azure", model="o3-mini", azure_deployment="o3-mini", max_tokens=20)
    assert llm.invoke("hi").content
    body = sent(running("azure"))
    assert body["max_completion_tokens"] == 20 and "max_tokens" not in body
    with pytest.raises(BadRequestError, match="reasoning model") as raised:
        chat_for("azure", model="o3-mini", azure_deployment="o3-mini", temperature=0.2).invoke("hi")
    assert raised.value.param == "temperature"


def test_azure_emulator_refuses_max_tokens_on_reasoning_deployments():
    emulator = running("azure")
    client = openai.AzureOpenAI(
        api_key=emulator.api_key,
        azure_endpoint=emulator.url,
        api_version="2024-12-01-preview",
        max_retries=0,
    )
    with pytest.raises(openai.BadRequestError, match="max_completion_tokens"):
        client.chat.completions.create(model="o3-mini", messages=USER, max_tokens=10)
    with pytest.raises(openai.BadRequestError, match="Only the default"):
        client.chat.completions.create(model="o3-mini", messages=USER, temperature=0.2)


def test_openai_compatible_reasoning_models_too():
    with OpenAICompatibleEmulator("openai_compatible") as emulator:
        llm = ChatOpenAICompatible(
            model="gpt-5-mini", api_key=emulator.api_key, base_url=emulator.base_url, max_tokens=9
        )
        llm.invoke("hi")
        assert emulator.requests[-1].body["max_completion_tokens"] == 9


# -- Azure: no model needed; the v1 GA path ---------------------------------------------------------------
def test_azure_classes_construct_from_the_deployment_alone():
    emulator = running("azure")
    llm = ChatAzureOpenAI(
        azure_endpoint=emulator.url, azure_deployment="gpt-4o", api_key=emulator.api_key
    )
    assert llm.model == "gpt-4o" and llm.invoke("hi").content
    embeddings = AzureOpenAIEmbeddings(
        azure_endpoint=emulator.url, azure_deployment="embed-small", api_key=emulator.api_key
    )
    assert len(embeddings.embed_query("hi")) == 1536
    assert emulator.requests[-1].path == "/openai/deployments/embed-small/embeddings"


def test_azure_v1_path_needs_no_api_version():
    emulator = running("azure")
    llm = ChatAzureOpenAI(
        azure_endpoint=emulator.url,
        azure_deployment="prod-4o",
        api_version="v1",
        api_key=emulator.api_key,
    )
    assert llm.invoke("hi").content
    request = emulator.requests[-1]
    assert request.path == "/openai/v1/chat/completions"
    assert request.body["model"] == "prod-4o"
    # the official SDK on the same path
    client = openai.OpenAI(api_key=emulator.api_key, base_url=f"{emulator.url}/openai/v1/")
    assert client.chat.completions.create(model="prod-4o", messages=USER).choices[0].message
    embeddings = AzureOpenAIEmbeddings(
        azure_endpoint=f"{emulator.url}/openai/v1",
        azure_deployment="embed-small",
        api_key=emulator.api_key,
    )
    assert embeddings.embed_query("hi")
    assert emulator.requests[-1].body["model"] == "embed-small"


# -- finish reasons never pass a cut reply off as complete ----------------------------------------------
@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_interrupted_finish_reason_is_an_upstream_error(streaming):
    emulator = running("deepseek")
    emulator.enqueue(Reply(text="partial answer", finish_reason="insufficient_system_resource"))
    llm = chat_for("deepseek")
    with pytest.raises(UpstreamUnavailableError) as raised:
        list(llm.stream("hi")) if streaming else llm.invoke("hi")
    assert raised.value.code == "insufficient_system_resource" and raised.value.retryable


@pytest.mark.parametrize(
    ("provider", "raw"),
    [("zhipu", "model_context_window_exceeded"), ("openai_compatible", "something_new")],
)
def test_cut_or_unknown_finish_reasons_report_length(provider, raw):
    running(provider).enqueue(Reply(text="cut", finish_reason=raw))
    assert chat_for(provider).invoke("hi").response_metadata["finish_reason"] == "length"


# -- cached prompt tokens ---------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["deepseek", "moonshot", "openai_compatible"])
def test_cached_prompt_tokens_become_cache_read(provider):
    usage = {"input_tokens": 10, "output_tokens": 1, "cached_tokens": 6}
    running(provider).enqueue(Reply(text="ok", usage=usage))
    result = chat_for(provider).invoke("hi")
    assert result.usage_metadata["input_token_details"] == {"cache_read": 6}


# -- Zhipu reasoning controls -----------------------------------------------------------------------------
def test_zhipu_thinking_controls():
    chat_for("zhipu", model="glm-4.6", thinking=True, clear_thinking=False).invoke("hi")
    body = sent(running("zhipu"))
    assert body["thinking"] == {"type": "enabled", "clear_thinking": False}


def test_moonshot_old_models_need_no_reasoning():
    call = AIMessage(
        "", tool_calls=[{"name": "get_weather", "args": {"location": "x"}, "id": "c1"}]
    )
    messages = [HumanMessage("q"), call, ToolMessage("sunny", tool_call_id="c1")]
    assert chat_for("moonshot").invoke(messages).content == "The result is sunny."


# -- embeddings: per-text limits ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "model", "text", "limit"),
    [
        ("qianfan", "embedding-v1", "字" * 1001, "1000 characters"),
        ("qianfan", "bge-large-zh", "a" * 2001, "2000 characters"),
        ("zhipu", "embedding-2", "word " * 600, "512 tokens"),
        ("ark", "doubao-embedding-text-240715", "word " * 4000, "4096 tokens"),
    ],
)
def test_embedding_texts_over_the_documented_limit_fail_before_sending(
    provider, model, text, limit
):
    embeddings = embeddings_for(provider, model=model)
    with pytest.raises(ContextLengthError, match=f"text 1 is too long .*{limit}") as raised:
        embeddings.embed_documents(["short", text])
    assert raised.value.param == "input[1]"
    assert running(provider).requests == []


@pytest.mark.parametrize(
    ("provider", "model", "text", "code"),
    [
        ("qianfan", "embedding-v1", "字" * 1001, "characters_too_long"),
        ("qianfan", "embedding-v1", "字 " * 500, "tokens_too_long"),
        ("zhipu", "embedding-2", "字" * 600, "1214"),
    ],
)
def test_embedding_emulators_enforce_per_text_limits(provider, model, text, code):
    emulator = running(provider)
    if provider == "zhipu":
        client = ZhipuAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
        with pytest.raises(Exception, match=code):
            client.embeddings.create(model=model, input=[text])
        return
    client = openai.OpenAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model=model, input=[text])
    assert raised.value.code == code


def test_zhipu_embedding_2_requests_stay_under_8k_tokens():
    """embedding-2 takes at most 8K tokens per request (all texts together): the official SDK
    sending 16 texts of ~500 tokens is refused; ours splits them into requests that fit."""
    emulator = running("zhipu")
    texts = ["字" * 510] * 16  # 8160 tokens as the emulator counts: 16 texts of at most 512
    client = ZhipuAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    with pytest.raises(Exception, match="8000 tokens per request"):
        client.embeddings.create(model="embedding-2", input=texts)
    before = len(emulator.requests)
    vectors = embeddings_for("zhipu", model="embedding-2").embed_documents(texts)
    assert len(vectors) == 16
    sizes = [len(request.body["input"]) for request in emulator.requests[before:]]
    assert sum(sizes) == 16 and len(sizes) > 1


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_unknown_finish_reason_keeps_the_raw_value(streaming):
    running("openai_compatible").enqueue(Reply(text="cut", finish_reason="something_new"))
    llm = chat_for("openai_compatible")
    if streaming:
        metadata = list(llm.stream("hi"))[-1].response_metadata
    else:
        metadata = llm.invoke("hi").response_metadata
    assert metadata["finish_reason"] == "length"
    assert metadata["provider_finish_reason"] == "something_new"


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_zhipu_web_search_results_reach_response_metadata(streaming):
    search = {"type": "web_search", "web_search": {"enable": True, "search_engine": "search_pro"}}
    llm = chat_for("zhipu").bind_tools([search])
    if streaming:
        metadata = list(llm.stream("latest news?"))[-1].response_metadata
    else:
        metadata = llm.invoke("latest news?").response_metadata
    (page,) = metadata["web_search"]
    assert page["link"].startswith("https://") and "latest news" in page["title"]
