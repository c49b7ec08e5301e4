"""No configured secret ever travels back, even when an upstream quotes it: every provider holds
its own planted key, every upstream failure echoes it, and everything the client and the
operator can see (bodies, headers, SSE and LangServe events, /metrics, every log record at
DEBUG, stdout/stderr, reprs, exception messages) is searched for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from langserve import RemoteRunnable

from langchain_chatchat.testing import Fault, Reply
from langchain_chatchat.workers.errors import AuthenticationError, ChatchatError
from langchain_chatchat.workers.redact import redact, register_secret
from tests.security.conftest import CHAT_MODELS, HI, KEYS, PLANTED, SERVER_KEY

# How each upstream echoes its key, as real providers do ("Incorrect API key provided: sk-...").
ECHOES: list[tuple[str, Callable[[str], Fault]]] = [
    ("401", lambda key: Fault.http(401, "invalid_api_key", f"Incorrect API key provided: {key}")),
    ("429", lambda key: Fault.http(429, "rate_limit_exceeded", f"Too many requests for {key}")),
    ("500", lambda key: Fault.http(500, "server_error", f"upstream broke; auth={key}")),
    (
        "in-stream",
        lambda key: Fault.stream_error(1, "InternalError", f"stream broke with key {key}"),
    ),
]


def _routes(model: str) -> list[tuple[str, str, dict[str, Any]]]:
    chat = {"model": model, "messages": HI}
    completion = {"model": model, "prompt": "hi"}
    return [
        ("v1 chat", "/v1/chat/completions", chat),
        ("v1 chat stream", "/v1/chat/completions", {**chat, "stream": True}),
        ("v1 completions", "/v1/completions", completion),
        ("v1 completions stream", "/v1/completions", {**completion, "stream": True}),
        ("langserve invoke", f"/{model}/invoke", {"input": "hi"}),
        ("langserve batch", f"/{model}/batch", {"inputs": ["hi"]}),
        ("langserve stream", f"/{model}/stream", {"input": "hi"}),
        ("langserve stream_log", f"/{model}/stream_log", {"input": "hi"}),
        ("langserve stream_events", f"/{model}/stream_events", {"input": "hi"}),
    ]


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_an_upstream_echoing_its_key_leaks_it_nowhere(http, up, transcript, ledger, model):
    emulator, key = up.of(model), KEYS[model]
    failures = 0
    for _, make_fault in ECHOES:
        for _, path, body in _routes(model):
            emulator.enqueue(make_fault(key))
            response = transcript.add(http.post(path, json=body))
            failures += response.status_code >= 400 or b"error" in response.content
        emulator.reset()
    assert failures == len(ECHOES) * len(_routes(model))  # every attempt did fail upstream
    assert any("***" in text for text in transcript.texts)  # echoed, and masked
    ledger.count("upstream error echoing the provider key", len(ECHOES) * len(_routes(model)))
    transcript.add(http.get("/metrics"))


def test_embeddings_errors_echoing_the_key_leak_nothing(http, up, transcript, ledger):
    for _, make_fault in ECHOES[:3]:
        up.dashscope.enqueue(make_fault(KEYS["qwen"]))
        body = {"model": "embed", "input": ["a"]}
        assert transcript.add(http.post("/v1/embeddings", json=body)).status_code >= 400
        up.dashscope.enqueue(make_fault(KEYS["qwen"]))
        assert transcript.add(http.post("/embed/invoke", json={"input": ["a"]})).status_code >= 400
    ledger.count("upstream error echoing the provider key", 6)


def test_the_official_clients_see_no_key(served, up, transcript, ledger):
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=SERVER_KEY, max_retries=0)
    remote = RemoteRunnable(f"{served.url}/qwen", headers={"Authorization": f"Bearer {SERVER_KEY}"})
    for model in CHAT_MODELS:
        up.of(model).enqueue(ECHOES[0][1](KEYS[model]))
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]
        transcript.note(caught.value, caught.value.body, caught.value.response.text)
    up.dashscope.enqueue(ECHOES[0][1](KEYS["qwen"]))
    with pytest.raises(httpx.HTTPStatusError) as failed:
        remote.invoke("hi")
    transcript.note(failed.value, failed.value.response.text)
    up.dashscope.enqueue(ECHOES[3][1](KEYS["qwen"]))
    with pytest.raises(httpx.HTTPStatusError) as failed:
        list(remote.stream("hi"))
    transcript.note(failed.value, failed.value.response.text)
    ledger.count("upstream error echoing the provider key", len(CHAT_MODELS) + 2)


def test_server_keys_and_config_stay_out_of_answers_and_reprs(served, up, transcript, ledger):
    app = served.app
    registry = app.state.registry
    transcript.note(repr(app.state.config), str(app.state.config), repr(registry))
    for served_model in registry:
        transcript.note(repr(served_model), repr(served_model.runnable), repr(served_model.pool))
        for replica in served_model.pool.replicas:
            transcript.note(repr(replica), repr(replica.model), str(replica.model))
    with httpx.Client(base_url=served.url, timeout=10) as client:
        for auth in (f"Bearer {SERVER_KEY}x", f"Basic {SERVER_KEY}", SERVER_KEY, ""):
            response = transcript.add(client.get("/v1/models", headers={"Authorization": auth}))
            assert response.status_code == 401
        headers = {"Authorization": f"Bearer {SERVER_KEY}"}
        up.dashscope.enqueue(Reply(text="hello"))
        ok = client.post(
            "/v1/chat/completions", json={"model": "qwen", "messages": HI}, headers=headers
        )
        assert transcript.add(ok).status_code == 200
        for path in ("/v1/models", "/metrics", "/openapi.json", "/health", "/ready"):
            transcript.add(client.get(path, headers=headers))
        for model in CHAT_MODELS:
            for what in ("input_schema", "output_schema", "config_schema", "playground/"):
                transcript.add(client.get(f"/{model}/{what}", headers=headers))
    ledger.count("server key / config probing", 4 + 1 + 5 + 4 * len(CHAT_MODELS))


def test_chatchat_errors_are_redacted_where_they_are_made():
    """Python callers get the same guarantee as HTTP clients: the message is scrubbed at birth."""
    register_secret("py-PLANTED-secret-3141")
    error = AuthenticationError("Incorrect API key provided: py-PLANTED-secret-3141", provider="x")
    for text in (str(error), repr(error), error.message, str(error.args)):
        assert "py-PLANTED-secret-3141" not in text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-AbCdEf0123456789xyz.", "AbCdEf0123456789xyz"),
        ("Authorization: Bearer abc.def-ghi_jkl~123", "abc.def-ghi_jkl~123"),
        ('{"api_key": "0123456789abcdef", "x": 1}', "0123456789abcdef"),
        ("token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxIn0"),
        ("key 0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp is invalid", "AbCdEfGhIjKlMnOp"),
        ("bad key bce-v3/ALTAK-abcdef123/0123456789abcdef", "0123456789abcdef"),
        ("AccessKeyId LTAI5tAbCdEfGhIjKlMn not found", "LTAI5tAbCdEfGhIjKlMn"),
        ("x-api-key=notregistered99", "notregistered99"),
        ("API key AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW is invalid", "SyA1b2C3d4E5f6G7h8I9j0"),
    ],
)
def test_well_known_key_shapes_are_masked_even_unregistered(text, secret):
    redacted = redact(text)
    assert secret not in redacted and "***" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=100000 input_tokens: 5, task-abcdefgh, the secret of good prose",
        "Incorrect or missing API key; send it as 'Authorization: Bearer <key>'.",
    ],
)
def test_redaction_keeps_ordinary_text(text):
    assert redact(text) == text


def test_every_configured_secret_is_registered_by_the_server(served):
    """Each planted secret (provider keys, the Azure AD token, both halves of Spark's and
    Zhipu's keys, the server key) is masked by the registry alone, shapes aside."""
    for secret in PLANTED:
        assert secret not in redact(f"x {secret} y")
        assert secret not in ChatchatError(f"upstream said: {secret}").message


def test_jwt_material_is_masked(http, up, transcript):
    """Zhipu's key is signed into a JWT for each call: were an upstream to echo that token, it
    would be masked too."""
    up.of("zhipu").enqueue(Reply(text="ok"))
    body = {"model": "zhipu", "messages": HI}
    assert transcript.add(http.post("/v1/chat/completions", json=body)).status_code == 200
    token = up.of("zhipu").requests[-1].headers["authorization"].split()[-1]
    assert token.startswith("eyJ")
    assert token not in redact(f"invalid token {token}")
    assert token not in ChatchatError(f"Authorization: Bearer {token} expired").message
