"""langchain-tests' ChatModelIntegrationTests for langchain-openai's ChatOpenAI pointed at our /v1.

The chain under test: ChatOpenAI → our server (OpenAI router) → ChatQwen → DashScope emulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from tests.server.conftest import API_KEY

_server: dict[str, Any] = {}


@pytest.fixture(autouse=True)
async def _point_at_server(server_url: str) -> AsyncIterator[None]:
    """Each test gets its own async HTTP client, opened and closed on that test's event loop.

    langchain-openai otherwise shares one cached client per base URL across the process, and its
    pooled connections would outlive the loop of the test that opened them.
    """
    _server["url"] = server_url
    async with openai.DefaultAsyncHttpxClient() as client:
        _server["async_client"] = client
        yield


class TestChatOpenAIThroughChatchat(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatOpenAI]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "qwen-plus",
            "base_url": f"{_server['url']}/v1",
            "api_key": API_KEY,
            "stream_usage": True,
            "max_retries": 0,
            "http_async_client": _server["async_client"],
        }

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "qwen-turbo"
