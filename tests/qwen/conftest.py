from __future__ import annotations

import pytest
from dashscope import close_shared_aio_session

from langchain_chatchat import ChatQwen, QwenEmbeddings

API_KEY = "sk-qwen-test-0123456789"


@pytest.fixture
def emulator(dashscope_emulator):
    return dashscope_emulator


@pytest.fixture
def llm(emulator) -> ChatQwen:
    return ChatQwen(
        model="qwen-plus", api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0
    )


@pytest.fixture
def embeddings(emulator) -> QwenEmbeddings:
    return QwenEmbeddings(
        model="text-embedding-v3", api_key=emulator.api_key, base_url=emulator.base_url
    )


def sent(emulator, index: int = -1) -> dict:
    """The JSON body of a request the emulator received."""
    return emulator.requests[index].body


@pytest.fixture(autouse=True)
async def _close_sdk_sessions():
    """The dashscope SDK keeps one aiohttp session per event loop; close it with the test's loop."""
    yield
    await close_shared_aio_session()
