"""Local models load and warm at server start-up; /ready tells the truth meanwhile."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer
from langchain_chatchat.workers.local.chat import LocalChatWorker


def _config(tiny_chat_model: str) -> dict:
    return {
        "models": [
            {
                "name": "tiny",
                "provider": "local",
                "kind": "chat",
                "params": {"model": tiny_chat_model},
            }
        ]
    }


@pytest.fixture
def held_load(monkeypatch) -> threading.Event:
    """Makes every local load wait until the returned event is set."""
    release = threading.Event()
    real = LocalChatWorker.load

    def load(self):
        assert release.wait(30)
        return real(self)

    monkeypatch.setattr(LocalChatWorker, "load", load)
    return release


def _wait_for(url: str, status: int) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(url)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_ready_is_503_until_loaded_and_warmed(tiny_chat_model: str, held_load) -> None:
    app = create_app(_config(tiny_chat_model))
    worker = app.state.registry.get("tiny").model.worker
    with BackgroundServer(app) as server:
        loading = httpx.get(f"{server.url}/ready")
        assert loading.status_code == 503
        assert loading.json() == {"status": "loading", "loading": ["tiny"]}
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert not worker.loaded
        held_load.set()
        assert _wait_for(f"{server.url}/ready", 200).status_code == 200
        assert worker.loaded, "the model is loaded before /ready says so"


def test_lazy_loads_on_the_first_request(tiny_chat_model: str) -> None:
    app = create_app(_config(tiny_chat_model), lazy=True)
    worker = app.state.registry.get("tiny").model.worker
    with BackgroundServer(app) as server:
        assert httpx.get(f"{server.url}/ready").status_code == 200
        assert not worker.loaded
        reply = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={
                "model": "tiny",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 2,
            },
            timeout=60,
        )
        assert reply.status_code == 200 and worker.loaded


def test_a_model_that_fails_to_load_keeps_ready_503(tmp_path) -> None:
    config = {
        "models": [
            {
                "name": "missing",
                "provider": "local",
                "kind": "chat",
                "params": {"model": str(tmp_path / "nothing")},
            }
        ]
    }
    with BackgroundServer(create_app(config)) as server:
        deadline = time.monotonic() + 30
        response = httpx.get(f"{server.url}/ready")
        while response.json().get("status") == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
            response = httpx.get(f"{server.url}/ready")
        assert response.status_code == 503
        assert "missing" in response.json()["failed"]
