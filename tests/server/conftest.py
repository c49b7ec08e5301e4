"""A real chatchat server (uvicorn, ephemeral 127.0.0.1 port) over the DashScope emulator.

One server per session, sharing the session's emulator; tests script the emulator through the
function-scoped `dashscope_emulator` fixture (fresh script and request log each test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from langchain_chatchat.providers import Provider, register_provider, unregister_provider
from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator

API_KEY = "sk-chatchat-test"
MAX_BODY = 64 * 1024
UPSTREAM_TIMEOUT = 0.5


class BrokenChatModel(BaseChatModel):
    """A provider with a bug: its details must never reach a client."""

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise RuntimeError("secret internal detail")

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=AIMessageChunk(content="partial"))
        raise RuntimeError("secret internal detail")


@pytest.fixture(scope="session")
def broken_provider() -> Iterator[str]:
    """A provider added at run time, as an entry point would: the server needs no change."""
    provider = Provider("broken-test", chat=f"{BrokenChatModel.__module__}:BrokenChatModel")
    register_provider(provider)
    yield provider.name
    unregister_provider(provider)


def qwen_params(emulator: DashScopeEmulator, model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "api_key": emulator.api_key,
        "base_url": emulator.base_url,
        "max_retries": 0,
        **extra,
    }


def server_config(emulator: DashScopeEmulator, broken: str) -> dict[str, Any]:
    return {
        "server": {"api_keys": [API_KEY], "max_body_size": MAX_BODY},
        "models": [
            {"name": "qwen-plus", "provider": "qwen", "params": qwen_params(emulator, "qwen-plus")},
            {
                "name": "qwen-turbo",
                "provider": "qwen",
                "params": qwen_params(emulator, "qwen-turbo"),
            },
            {
                "name": "qwen-slow",
                "provider": "qwen",
                "params": qwen_params(emulator, "qwen-plus", timeout=UPSTREAM_TIMEOUT),
            },
            {
                "name": "text-embedding-v3",
                "provider": "qwen",
                "kind": "embeddings",
                "params": qwen_params(emulator, "text-embedding-v3"),
            },
            {"name": "broken", "provider": broken},
        ],
    }


@pytest.fixture(scope="session")
def server_url(
    dashscope_emulator_session: DashScopeEmulator, broken_provider: str
) -> Iterator[str]:
    app = create_app(server_config(dashscope_emulator_session, broken_provider))
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture
def emulator(dashscope_emulator: DashScopeEmulator) -> DashScopeEmulator:
    return dashscope_emulator


@pytest.fixture
def client(server_url: str, emulator: DashScopeEmulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture
def aclient(server_url: str, emulator: DashScopeEmulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server_url}/v1", api_key=API_KEY, max_retries=0)


def sent(emulator: DashScopeEmulator, index: int = -1) -> dict[str, Any]:
    """The JSON body of a request the emulator received."""
    body = emulator.requests[index].body
    assert body is not None
    return body
