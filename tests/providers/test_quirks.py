"""What only one provider does: Zhipu's JWT, DeepSeek's reasoning echo, Azure's deployments,
MiniMax's snapshots and GroupId, Qianfan's alternation, and the tolerance the generic
OpenAI-compatible client needs for local servers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.providers import get_provider
from langchain_chatchat.testing import Reply, ToolCallReply
from langchain_chatchat.testing.openai_compatible import OpenAICompatibleEmulator
from langchain_chatchat.workers.errors import AuthenticationError, BadRequestError
from langchain_chatchat.workers.zhipu import zhipu_jwt

from .support import SPECS, chat_for, running, sent


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return "sunny"


@pytest.fixture(autouse=True)
def clean():
    for name in SPECS:
        running(name).reset()
    yield


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- Zhipu ---------------------------------------------------------------------------------------------
def test_zhipu_signs_a_short_lived_jwt_with_the_secret():
    emulator = running("zhipu")
    llm = chat_for("zhipu")
    llm.invoke("hi")
    llm.invoke("again")
    tokens = [r.headers["authorization"].removeprefix("Bearer ") for r in emulator.requests]
    assert tokens[0] == tokens[1], "the token is cached between requests"
    header, payload, signature = tokens[0].split(".")
    assert json.loads(_b64(header)) == {"alg": "HS256", "sign_type": "SIGN"}
    claims = json.loads(_b64(payload))
    key_id, secret = emulator.api_key.split(".")
    assert claims["api_key"] == key_id
    assert (
        0 < claims["exp"] - claims["timestamp"] <= 180_000
        and abs(claims["timestamp"] - time.time() * 1000) < 60_000
    )
    expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert _b64(signature) == expected
    assert secret not in json.dumps(dict(emulator.requests[0].headers))


def test_zhipu_token_is_refreshed_before_it_expires(monkeypatch):
    llm = chat_for("zhipu")
    llm.invoke("hi")
    later = time.time() + 170
    monkeypatch.setattr("langchain_chatchat.workers.zhipu.time.time", lambda: later)
    llm.invoke("again")
    first, second = (r.headers["authorization"] for r in running("zhipu").requests)
    assert first != second


def test_zhipu_rejects_an_expired_token_with_code_1003():
    emulator = running("zhipu")
    stale = zhipu_jwt(emulator.api_key, now=time.time() - 3600)
    llm = chat_for("zhipu", use_jwt=False, api_key=stale)
    with pytest.raises(AuthenticationError) as raised:
        llm.invoke("hi")
    assert raised.value.code == "1003"


def test_zhipu_plain_key_is_accepted_too():
    llm = chat_for("zhipu", use_jwt=False)
    assert llm.invoke("hi").content == "Hello! You said: hi"
    assert (
        running("zhipu").requests[-1].headers["authorization"]
        == f"Bearer {running('zhipu').api_key}"
    )


def test_zhipu_needs_a_user_turn_and_sends_thinking():
    with pytest.raises(BadRequestError, match="at least one user message"):
        chat_for("zhipu").invoke([SystemMessage("be brief"), AIMessage("hello")])
    assert running("zhipu").requests == []
    result = chat_for("zhipu", thinking=True).invoke("why?")
    assert sent(running("zhipu"))["thinking"] == {"type": "enabled"}
    assert result.additional_kwargs["reasoning_content"]


def test_zhipu_streams_the_request_id_it_sends():
    chunks = list(chat_for("zhipu").stream("hi"))
    assert chunks[-1].response_metadata["request_id"] == running("zhipu").requests[-1].request_id


# -- DeepSeek ------------------------------------------------------------------------------------------
def test_deepseek_reasoner_passes_reasoning_back_on_tool_turns():
    llm = chat_for("deepseek", model="deepseek-reasoner").bind_tools([get_weather])
    question = HumanMessage("what is the weather in Paris?")
    first = llm.invoke([question])
    assert first.tool_calls and first.additional_kwargs["reasoning_content"]
    answer = llm.invoke(
        [question, first, ToolMessage("sunny", tool_call_id=first.tool_calls[0]["id"])]
    )
    assert answer.content == "The result is sunny."
    history = sent(running("deepseek"))["messages"]
    assert history[1]["reasoning_content"] == first.additional_kwargs["reasoning_content"]
    llm.invoke(
        [
            question,
            AIMessage("plain answer", additional_kwargs={"reasoning_content": "x"}),
            HumanMessage("ok"),
        ]
    )
    assert "reasoning_content" not in sent(running("deepseek"))["messages"][1], (
        "only tool-call turns carry it"
    )


def test_deepseek_emulator_enforces_the_reasoning_echo():
    emulator = running("deepseek")
    llm = ChatOpenAICompatible(
        model="deepseek-reasoner",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_retries=0,
    )
    call = AIMessage(
        "", tool_calls=[{"name": "get_weather", "args": {"location": "x"}, "id": "c1"}]
    )
    with pytest.raises(BadRequestError, match="reasoning_content"):
        llm.invoke([HumanMessage("q"), call, ToolMessage("sunny", tool_call_id="c1")])


# -- Azure ----------------------------------------------------------------------------------------------
def test_azure_uses_deployment_path_api_version_and_api_key():
    emulator = running("azure")
    llm = chat_for("azure", azure_deployment="prod-gpt4o", api_version="2024-06-01")
    llm.invoke("hi")  # the Azure profile answers 404 without an api-version query
    request = emulator.requests[-1]
    assert request.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert request.headers["api-key"] == emulator.api_key and "authorization" not in request.headers


def test_azure_entra_id_token_instead_of_key(monkeypatch):
    emulator = running("azure")
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    spec = SPECS["azure"]
    llm = spec.chat(
        model=spec.model,
        azure_endpoint=emulator.url,
        azure_ad_token=emulator.api_key,
        max_retries=0,
    )
    assert llm.invoke("hi").content == "Hello! You said: hi"
    assert emulator.requests[-1].headers["authorization"] == f"Bearer {emulator.api_key}"


# -- MiniMax -------------------------------------------------------------------------------------------
def test_minimax_closing_snapshot_is_not_duplicated():
    emulator = running("minimax")
    emulator.enqueue(
        Reply(
            text="完整的回答",
            reasoning="想一想",
            tool_calls=[ToolCallReply("get_weather", {"location": "北京"})],
        )
    )
    full = None
    for chunk in chat_for("minimax").bind_tools([get_weather]).stream("北京天气"):
        full = chunk if full is None else full + chunk
    assert full.content == "完整的回答" and full.additional_kwargs["reasoning_content"] == "想一想"
    assert [c["args"] for c in full.tool_calls] == [{"location": "北京"}]
    assert emulator.requests[-1].path == "/v1/text/chatcompletion_v2"


# -- Qianfan -------------------------------------------------------------------------------------------
def test_qianfan_rejects_a_conversation_that_cannot_alternate():
    with pytest.raises(BadRequestError, match="alternating user/assistant"):
        chat_for("qianfan").invoke([AIMessage("I speak first"), HumanMessage("hi")])
    assert running("qianfan").requests == []


def test_qianfan_app_id_header_passes_through():
    chat_for("qianfan", default_headers={"appid": "app-123"}).invoke("hi")
    assert running("qianfan").requests[-1].headers["appid"] == "app-123"


# -- the generic OpenAI-compatible client and local-server quirks ----------------------------------------
@pytest.mark.parametrize(
    ("quirk", "check"),
    [
        ({"usage_mode": "never"}, lambda full: full.usage_metadata is None),
        (
            {"reasoning_key": "reasoning"},
            lambda full: full.additional_kwargs["reasoning_content"] == "hmm",
        ),
        (
            {"tool_call_index": False},
            lambda full: (
                [c["args"] for c in full.tool_calls] == [{"location": "A"}, {"location": "B"}]
            ),
        ),
        ({"ignore_stream": True}, lambda full: full.content == "done"),
        ({"sse_done": False}, lambda full: full.content == "done"),
    ],
    ids=["no-usage", "reasoning-field", "no-tool-index", "ignores-stream", "no-done-marker"],
)
def test_openai_compatible_tolerates_local_server_quirks(quirk, check):
    with OpenAICompatibleEmulator("openai_compatible", **quirk) as emulator:
        llm = ChatOpenAICompatible(
            model="local", api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0
        )
        calls = [
            ToolCallReply("get_weather", {"location": "A"}),
            ToolCallReply("get_weather", {"location": "B"}),
        ]
        emulator.enqueue(
            Reply(
                text="done", reasoning="hmm", tool_calls=calls if "tool_call_index" in quirk else ()
            )
        )
        full = None
        for chunk in llm.bind_tools([get_weather]).stream("go"):
            full = chunk if full is None else full + chunk
        assert check(full)
        emulator.enqueue(Reply(text="done"))
        assert llm.invoke("go").content == "done"


def test_openai_compatible_without_key_sends_no_authorization():
    with OpenAICompatibleEmulator("openai_compatible", authenticate=lambda call: True) as emulator:
        llm = ChatOpenAICompatible(model="local", base_url=emulator.base_url, api_key=None)
        assert llm.invoke("hi").content == "Hello! You said: hi"
        assert "authorization" not in emulator.requests[-1].headers


@pytest.mark.parametrize(
    "alias",
    [
        "vllm",
        "ollama",
        "xinference",
        "one-api",
        "zhipuai",
        "glm",
        "ernie",
        "doubao",
        "volcengine",
        "kimi",
        "xinghuo",
        "azure_openai",
    ],
)
def test_registry_aliases(alias):
    provider = get_provider(alias)
    assert provider.class_for("chat").provider == provider.name
