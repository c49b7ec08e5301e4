from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_chatchat import ChatGemini, GeminiEmbeddings
from langchain_chatchat.testing import GeminiEmulator

API_KEY = "gemini-test-key-0123456789"


@pytest.fixture(scope="session")
def gemini_session() -> Iterator[GeminiEmulator]:
    with GeminiEmulator(api_key=API_KEY) as emulator:
        yield emulator


@pytest.fixture
def emulator(gemini_session: GeminiEmulator) -> Iterator[GeminiEmulator]:
    """The session's emulator with an empty script and request log for this test."""
    gemini_session.reset()
    yield gemini_session
    gemini_session.reset()


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
