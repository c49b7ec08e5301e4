"""A request can never reach an operator setting: every route, every protocol, every way a
client can name a field (body, `extra_body`, LangServe `kwargs` / `configurable` / `/batch`
items, Python `invoke(**kwargs)`). Documented per-call extras still reach the provider."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from langserve import RemoteRunnable

from langchain_chatchat.testing import Reply
from langchain_chatchat.workers.errors import BadRequestError
from tests.security.conftest import CHAT_MODELS, HI, SERVER_KEY

ATTACKER = "http://127.0.0.1:9/steal"
# What a hostile body sets to redirect the call, swap the key or change how it is made.
OPERATOR_FIELDS: dict[str, Any] = {
    "base_address": ATTACKER,
    "base_url": ATTACKER,
    "api_base": ATTACKER,
    "azure_endpoint": ATTACKER,
    "endpoint": ATTACKER,
    "url": ATTACKER,
    "api_key": "sk-attacker-0000000000",
    "dashscope_api_key": "sk-attacker-0000000000",
    "azure_ad_token": "attacker-token",
    "api_secret": "attacker-secret",
    "api_version": "1999-01-01",
    "headers": {"Authorization": "Bearer attacker"},
    "default_headers": {"X-Evil": "1"},
    "extra_headers": {"X-Evil": "1"},
    "timeout": 0.001,
    "request_timeout": 0.001,
    "max_retries": 100,
    "proxies": {"https": ATTACKER},
    "http_client": "x",
    "model_kwargs": {"base_address": ATTACKER},
    "model_name": "another-upstream-model",
    "deployment": "another-deployment",
    "azure_deployment": "another-deployment",
    "workspace": "ws-attacker",
    "use_jwt": False,
    "group_id": "attacker-group",
    "streaming": True,
    "callbacks": [],
    "config": {"configurable": {}},
    "tags": ["x"],
    "run_name": "x",
    "run_id": "x",
    "input": "x",
}


def _chat(model: str, stream: bool, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": HI, "stream": stream, **extra}


def _completion(model: str, stream: bool, **extra: Any) -> dict[str, Any]:
    return {"model": model, "prompt": "hi", "stream": stream, **extra}


ROUTES = [
    ("/v1/chat/completions", _chat, False),
    ("/v1/chat/completions", _chat, True),
    ("/v1/completions", _completion, False),
    ("/v1/completions", _completion, True),
]


def _assert_unrecognized(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, (field, response.status_code, response.text)
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("Unrecognized request argument"), error
    assert field in error["message"] and error["param"] == field


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_operator_settings_in_a_body_are_400_and_never_reach_an_upstream(
    http, up, transcript, ledger, model
):
    for path, body, stream in ROUTES:
        for field, value in OPERATOR_FIELDS.items():
            response = transcript.add(http.post(path, json=body(model, stream, **{field: value})))
            _assert_unrecognized(response, field)
    ledger.count("operator setting in an /v1 body", len(ROUTES) * len(OPERATOR_FIELDS))
    assert up.calls() == 0  # nothing was sent anywhere, the attacker's URL least of all


@pytest.mark.parametrize("stream", [False, True])
def test_operator_settings_through_the_sdks_extra_body_are_400(served, up, ledger, stream):
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=SERVER_KEY, max_retries=0)
    for model in CHAT_MODELS:
        for field in ("base_address", "base_url", "api_key", "headers", "model_kwargs"):
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(
                    model=model,
                    messages=HI,  # type: ignore[arg-type]
                    stream=stream,
                    extra_body={field: OPERATOR_FIELDS[field]},
                )
            assert caught.value.body["param"] == field  # type: ignore[index]
            with pytest.raises(openai.BadRequestError):
                client.completions.create(
                    model=model, prompt="hi", stream=stream, extra_body={field: ATTACKER}
                )
    ledger.count("operator setting via openai SDK extra_body", len(CHAT_MODELS) * 5 * 2)
    assert up.calls() == 0


def test_unknown_embedding_fields_are_400(http, up, transcript, ledger):
    fields = {name: value for name, value in OPERATOR_FIELDS.items() if name != "input"}
    for field, value in fields.items():
        response = transcript.add(
            http.post("/v1/embeddings", json={"model": "embed", "input": ["a"], field: value})
        )
        _assert_unrecognized(response, field)
    ledger.count("operator setting in an /v1/embeddings body", len(fields))
    assert up.calls() == 0


LANGSERVE_ENDPOINTS = ("invoke", "batch", "stream", "stream_log", "stream_events")


def _langserve_body(endpoint: str, **extra: Any) -> dict[str, Any]:
    if endpoint == "batch":
        return {"inputs": ["hi"], **extra}
    return {"input": "hi", **extra}


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_langserve_kwargs_and_configurable_cannot_set_anything(http, up, transcript, ledger, model):
    attempts = 0
    for endpoint in LANGSERVE_ENDPOINTS:
        url = f"/{model}/{endpoint}"
        for field in ("base_address", "api_key", "headers", "temperature"):
            value = OPERATOR_FIELDS.get(field, 0.1)
            response = transcript.add(
                http.post(url, json=_langserve_body(endpoint, kwargs={field: value}))
            )
            assert response.status_code == 400, response.text
            assert response.json()["error"]["param"] == "kwargs"
            config = {"configurable": {field: value}}
            response = transcript.add(http.post(url, json=_langserve_body(endpoint, config=config)))
            assert response.status_code == 400, response.text
            assert response.json()["error"]["param"] == f"config.configurable.{field}"
            attempts += 2
        for configurable in (5, "x", [1], True):
            body = _langserve_body(endpoint, config={"configurable": configurable})
            response = transcript.add(http.post(url, json=body))
            assert response.status_code == 400, response.text
            assert response.json()["error"]["param"] == "config.configurable"
            attempts += 1
    batch = {"inputs": ["hi", "hi"], "config": [{}, {"configurable": {"api_key": "x"}}]}
    assert transcript.add(http.post(f"/{model}/batch", json=batch)).status_code == 400
    for endpoint in ("invoke", "batch", "stream"):  # config-hash routes carry configs too: off
        response = transcript.add(
            http.post(f"/{model}/c/N4XyA/{endpoint}", json=_langserve_body(endpoint))
        )
        assert response.status_code == 404
    ledger.count("LangServe kwargs / configurable / batch configs / config hash", attempts + 4)
    assert up.calls() == 0


def test_remote_runnable_configurable_is_refused(served, up, ledger):
    headers = {"Authorization": f"Bearer {SERVER_KEY}"}
    remote = RemoteRunnable(f"{served.url}/qwen", headers=headers)
    hostile = remote.with_config(configurable={"base_address": ATTACKER})
    for call in (
        lambda: hostile.invoke("hi"),
        lambda: list(hostile.stream("hi")),
        lambda: hostile.batch(["hi"]),
    ):
        with pytest.raises(httpx.HTTPStatusError) as caught:
            call()
        assert caught.value.response.status_code == 400
    ledger.count("LangServe configurable via RemoteRunnable", 3)
    assert up.calls() == 0


def test_python_invoke_refuses_operator_settings(served, up, ledger):
    """The same check, in the same place, for Python callers of the very models served."""
    tried = 0
    for served_model in served.app.state.registry:
        if served_model.kind != "chat":
            continue
        model = served_model.model
        for field in ("base_address", "api_key", "headers", "timeout", "model_kwargs"):
            with pytest.raises(BadRequestError, match=f"Unrecognized request argument.*{field}"):
                model.invoke("hi", **{field: OPERATOR_FIELDS[field]})
            tried += 1
    ledger.count("operator setting via Python invoke(**kwargs)", tried)
    assert up.calls() == 0


@pytest.mark.parametrize(
    ("model", "extras", "where"),
    [
        ("qwen", {"enable_search": True, "top_k": 5, "repetition_penalty": 1.1}, "parameters"),
        ("qwen", {"enable_thinking": False, "thinking_budget": 64}, "parameters"),
        ("zhipu", {"thinking": {"type": "disabled"}, "do_sample": True}, None),
        ("deepseek", {"reasoning_effort": "high"}, None),
        ("remote", {"top_k": 4, "repetition_penalty": 1.05}, None),
    ],
)
def test_documented_per_call_extras_reach_the_provider(served, up, model, extras, where):
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=SERVER_KEY, max_retries=0)
    up.of(model).enqueue(Reply(text="ok"))
    reply = client.chat.completions.create(
        model=model,
        messages=HI,  # type: ignore[arg-type]
        extra_body=extras,
    )
    assert reply.choices[0].message.content == "ok"
    body = up.of(model).requests[-1].body
    sent = body[where] if where else body
    for name, value in extras.items():
        assert sent[name] == value


def test_a_provider_only_accepts_its_own_extras(http, up, transcript, ledger):
    """Qwen's extras are not DeepSeek's: each class declares its own."""
    for model, foreign in (("deepseek", "enable_search"), ("qwen", "reasoning_effort")):
        response = transcript.add(
            http.post("/v1/chat/completions", json=_chat(model, False, **{foreign: True}))
        )
        _assert_unrecognized(response, foreign)
    ledger.count("another provider's extra", 2)
    assert up.calls() == 0
