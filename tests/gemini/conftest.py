from __future__ import annotations

import pytest

from langchain_chatchat import ChatGemini, GeminiEmbeddings
from langchain_chatchat.testing import GeminiEmulator


@pytest.fixture
def emulator(gemini_emulator: GeminiEmulator) -> GeminiEmulator:
    """The pytest plugin's session emulator, with an empty script and request log."""
    return gemini_emulator


@pytest.fixture
def llm(emulator: GeminiEmulator) -> ChatGemini:
    return ChatGemini(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)


@pytest.fixture
def embeddings(emulator: GeminiEmulator) -> GeminiEmbeddings:
    return GeminiEmbeddings(api_key=emulator.api_key, base_url=emulator.base_url)


def sent(emulator: GeminiEmulator, index: int = -1) -> dict:
    """The JSON body of a request the emulator received."""
    body = emulator.requests[index].body
    assert body is not None
    return body
