"""Fixtures for the OpenAI-style provider family (helpers live in `support`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from langchain_chatchat.testing.openai_compatible import OpenAICompatibleEmulator

from .support import _RUNNING, SPECS, chat_for, running


@pytest.fixture(scope="session", autouse=True)
def _stop_emulators() -> Iterator[None]:
    yield
    for emulator in _RUNNING.values():
        emulator.stop()
    _RUNNING.clear()


@pytest.fixture(params=sorted(SPECS))
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def emu(provider: str) -> Iterator[OpenAICompatibleEmulator]:
    """The provider's emulator with an empty script and request log for this test."""
    emulator = running(provider)
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def llm(provider: str, emu: OpenAICompatibleEmulator) -> Any:
    return chat_for(provider)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "langchain_chatchat.workers.retry.RetryPolicy.delay", lambda self, attempt, error: 0.0
    )
