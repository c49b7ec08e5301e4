"""Security properties, each checked rather than assumed: provider keys never leak (a planted
key is searched for in everything the server logs, prints or answers, and in every repr),
API keys are compared in constant time, bodies are size-limited on both protocols, CORS is off
unless configured, and the server binds to loopback unless told otherwise.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from langchain_chatchat import cli
from langchain_chatchat.server import ConfigError, create_app, load_config
from langchain_chatchat.server.registry import ModelRegistry
from langchain_chatchat.testing import (
    BackgroundServer,
    DashScopeEmulator,
    Fault,
    OpenAICompatibleEmulator,
    Reply,
)

PLANTED = "sk-PLANTED-5f3a9c1e7b2d4086"
SERVER_KEY = "sk-server-0d9e8f7a6b5c"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def planted_upstreams() -> Iterator[tuple[DashScopeEmulator, OpenAICompatibleEmulator]]:
    """Two providers whose only valid key is the planted one."""
    with (
        DashScopeEmulator(api_key=PLANTED) as dashscope,
        OpenAICompatibleEmulator(api_key=PLANTED) as openai_compatible,
    ):
        yield dashscope, openai_compatible


def planted_config(
    dashscope: DashScopeEmulator, openai_compatible: OpenAICompatibleEmulator
) -> dict[str, Any]:
    bearer = {"Authorization": f"Bearer {PLANTED}"}
    return {
        "server": {"api_keys": [SERVER_KEY]},
        "models": [
            {
                "name": "qwen",
                "provider": "qwen",
                "params": {"api_key": PLANTED, "base_url": dashscope.base_url, "max_retries": 0},
            },
            {
                "name": "mixed",
                "replicas": [
                    {
                        "url": openai_compatible.base_url,
                        "params": {"model": "m", "api_key": PLANTED, "max_retries": 0},
                    },
                    {
                        "url": "http://127.0.0.1:9/m",
                        "protocol": "langserve",
                        "params": {"headers": bearer},
                    },
                ],
            },
            {
                "name": "embed",
                "provider": "qwen",
                "kind": "embeddings",
                "params": {"api_key": PLANTED, "base_url": dashscope.base_url, "max_retries": 0},
            },
        ],
    }


def test_a_planted_provider_key_appears_nowhere(planted_upstreams, caplog, capfd):
    dashscope, openai_compatible = planted_upstreams
    caplog.set_level(logging.DEBUG)  # every logger, every level: SDKs, httpx, uvicorn, ours
    seen: list[str] = []
    config = planted_config(dashscope, openai_compatible)
    app = create_app(config)
    registry = app.state.registry
    seen += [repr(app.state.config), str(app.state.config), repr(registry)]
    for served in registry:
        seen += [repr(served), repr(served.runnable), repr(served.pool)]
        seen += [repr(replica) for replica in served.pool.replicas]
        seen += [repr(replica.model) for replica in served.pool.replicas]
        seen += [str(replica.model) for replica in served.pool.replicas]
    seen += construction_errors(config)

    headers = {"Authorization": f"Bearer {SERVER_KEY}"}
    with (
        BackgroundServer(app) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=10) as client,
    ):

        def record(response: httpx.Response) -> None:
            seen.append(f"{response.status_code} {response.headers} {response.text}")

        for model in ("qwen", "mixed"):
            for stream in (False, True):
                body = {"model": model, "messages": HI, "stream": stream}
                record(client.post("/v1/chat/completions", json=body))
        dashscope.enqueue(Fault.http(401, "InvalidApiKey", "Invalid API-key provided."))
        record(client.post("/v1/chat/completions", json={"model": "qwen", "messages": HI}))
        dashscope.enqueue(Fault.stream_error(1, "InternalError", "boom"))
        record(
            client.post(
                "/v1/chat/completions", json={"model": "qwen", "messages": HI, "stream": True}
            )
        )
        openai_compatible.enqueue(Fault.http(500, "server_error", "upstream broke"))
        record(client.post("/v1/chat/completions", json={"model": "mixed", "messages": HI}))
        record(client.post("/v1/embeddings", json={"model": "embed", "input": ["a"]}))
        record(
            client.post(
                "/v1/chat/completions",
                json={"model": "qwen", "messages": HI},
                headers={"Authorization": "Bearer wrong"},
            )
        )
        dashscope.enqueue(Reply(text="hello"))
        record(client.post("/qwen/invoke", json={"input": "hi"}))
        for path in (
            "/v1/models",
            "/v1/models/qwen",
            "/metrics",
            "/openapi.json",
            "/docs",
            "/health",
            "/ready",
            *(
                f"/{name}/{what}"
                for name in ("qwen", "mixed", "embed")
                for what in ("input_schema", "output_schema", "config_schema", "playground/")
            ),
        ):
            record(client.get(path))
    out, err = capfd.readouterr()
    seen += [caplog.text, out, err]
    assert any("Hello! You said: hi" in text for text in seen)  # the calls did happen,
    assert any("the LangServe replica could not be reached" in text for text in seen)  # failed,
    assert any('"status": 401' in line for line in caplog.messages)  # the access log too
    for text in seen:
        assert PLANTED not in text
        assert SERVER_KEY not in text


def construction_errors(config: dict[str, Any]) -> list[str]:
    """What a user is shown for bad entries that hold the planted key."""
    entry = config["models"][0]
    texts = []
    for bad in ({"temprature": 1}, {"temperature": "hot"}):
        broken = {**entry, "params": {**entry["params"], **bad}}
        with pytest.raises(ConfigError) as caught:
            ModelRegistry.from_config(load_config({"models": [broken]}))
        texts.append(str(caught.value))
    return texts


def test_api_keys_are_compared_in_constant_time_against_every_key(monkeypatch):
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("langchain_chatchat.server.middleware.hmac.compare_digest", recording)
    keys = ["sk-one", "sk-two", "sk-three"]
    app = create_app({"server": {"api_keys": keys}, "models": [_QWEN]})
    with TestClient(app) as client:
        assert (
            client.get("/v1/models", headers={"Authorization": "Bearer sk-one"}).status_code == 200
        )
        assert len(calls) == 3  # a match on the first key still compares with the others
        assert (
            client.get("/v1/models", headers={"Authorization": "Bearer sk-nope"}).status_code == 401
        )
        assert len(calls) == 6


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/qwen-plus/invoke"])
def test_oversized_bodies_are_413_on_both_protocols(path):
    app = create_app({"server": {"max_body_size": 1024}, "models": [_QWEN]})
    with TestClient(app) as client:
        response = client.post(path, content=b'{"input": "' + b"x" * 2048 + b'"}')
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_cors_is_off_unless_configured():
    with TestClient(create_app({"models": [_QWEN]})) as client:
        preflight = client.options(
            "/v1/chat/completions",
            headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
        )
        simple = client.get("/v1/models", headers={"Origin": "https://ui.example"})
    for response in (preflight, simple):
        assert not any(name.startswith("access-control-") for name in response.headers)


def test_serve_binds_to_loopback_by_default(monkeypatch, tmp_path):
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - {name: m, provider: qwen, params: {api_key: k}}\n")
    result = CliRunner().invoke(cli.app, ["serve", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert calls[0]["host"] == "127.0.0.1"
    assert "warning" not in result.output


_QWEN = {"name": "qwen-plus", "provider": "qwen", "params": {"api_key": "k"}}
