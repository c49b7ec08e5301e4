"""Shared set-up for the robustness tests: a real server (uvicorn, 127.0.0.1) over emulators."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator

API_KEY = "sk-robustness"


def assert_openai_error(body: Any) -> dict[str, Any]:
    """`body` is exactly OpenAI's error shape: {"error": {message, type, param, code}}."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    assert "Traceback" not in error["message"], error
    return error


def qwen_server_config(base_url: str, api_key: str) -> dict[str, Any]:
    common = {"api_key": api_key, "base_url": base_url, "max_retries": 0}
    return {
        "server": {"api_keys": [API_KEY], "max_body_size": 256 * 1024},
        "models": [
            {"name": "qwen-plus", "provider": "qwen", "params": {"model": "qwen-plus", **common}},
            {
                "name": "text-embedding-v3",
                "provider": "qwen",
                "kind": "embeddings",
                "params": {"model": "text-embedding-v3", **common},
            },
        ],
    }


def _forget_sse_exit_event() -> None:
    """sse-starlette (LangServe's SSE) keeps one process-wide exit event, bound to the event loop
    of the first server that streamed; other servers' streams then fail. Each test server here
    runs its own loop, so the event is dropped before and after using one."""
    from sse_starlette.sse import AppStatus

    AppStatus.should_exit_event = None


@pytest.fixture(scope="module")
def qwen_server(dashscope_emulator_session: DashScopeEmulator) -> Iterator[tuple[str, Any]]:
    """(root URL, app) of a server whose models live on the session's DashScope emulator."""
    emulator = dashscope_emulator_session
    app = create_app(qwen_server_config(emulator.base_url, emulator.api_key))
    _forget_sse_exit_event()
    try:
        with BackgroundServer(app) as server:
            yield server.url, app
    finally:
        _forget_sse_exit_event()
