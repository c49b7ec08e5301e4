"""Two real servers over the session's DashScope emulator: one open, one with `api_keys`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator
from tests.server.conftest import qwen_params

API_KEY = "sk-web-test"


def web_config(emulator: DashScopeEmulator, api_keys: list[str]) -> dict[str, Any]:
    return {
        "server": {"api_keys": api_keys},
        "models": [
            {"name": "qwen-plus", "provider": "qwen", "params": qwen_params(emulator, "qwen-plus")},
            {
                "name": "text-embedding-v3",
                "provider": "qwen",
                "kind": "embeddings",
                "params": qwen_params(emulator, "text-embedding-v3"),
            },
        ],
    }


@pytest.fixture(scope="session")
def open_url(dashscope_emulator_session: DashScopeEmulator) -> Iterator[str]:
    with BackgroundServer(create_app(web_config(dashscope_emulator_session, []))) as server:
        yield server.url


@pytest.fixture(scope="session")
def keyed_url(dashscope_emulator_session: DashScopeEmulator) -> Iterator[str]:
    app = create_app(web_config(dashscope_emulator_session, [API_KEY]))
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture
def emulator(dashscope_emulator: DashScopeEmulator) -> DashScopeEmulator:
    return dashscope_emulator
