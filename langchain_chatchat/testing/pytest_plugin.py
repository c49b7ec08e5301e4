"""pytest fixtures for the emulators, opt-in: ``pytest_plugins = ["langchain_chatchat.testing.pytest_plugin"]``
in a conftest.py, or ``pytest -p langchain_chatchat.testing.pytest_plugin``.

One emulator server is started per test session and shared: the function-scoped fixture hands
it to each test with an empty script and no recorded requests, which keeps tests fast (starting
and stopping a server costs more than most tests).  Tests that need custom models or an API key
should build their own `DashScopeEmulator`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_chatchat.testing.dashscope import DashScopeEmulator
from langchain_chatchat.testing.gemini import GeminiEmulator


@pytest.fixture(scope="session")
def dashscope_emulator_session() -> Iterator[DashScopeEmulator]:
    """A started DashScope emulator shared by the whole session (API key "test-key")."""
    with DashScopeEmulator() as emulator:
        yield emulator


@pytest.fixture
def dashscope_emulator(
    dashscope_emulator_session: DashScopeEmulator,
) -> Iterator[DashScopeEmulator]:
    """The session's DashScope emulator with a fresh script and request log for this test."""
    dashscope_emulator_session.reset()
    yield dashscope_emulator_session
    dashscope_emulator_session.reset()


@pytest.fixture(scope="session")
def gemini_emulator_session() -> Iterator[GeminiEmulator]:
    """A started Gemini emulator shared by the whole session (API key "test-gemini-key")."""
    with GeminiEmulator() as emulator:
        yield emulator


@pytest.fixture
def gemini_emulator(gemini_emulator_session: GeminiEmulator) -> Iterator[GeminiEmulator]:
    """The session's Gemini emulator with a fresh script and request log for this test."""
    gemini_emulator_session.reset()
    yield gemini_emulator_session
    gemini_emulator_session.reset()
