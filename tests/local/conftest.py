"""Session fixtures: the tiny models of tiny_models.py, built once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from .tiny_models import build_tiny_chat_model, build_tiny_encoder, build_tool_calling_model


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of the tiny chat model directory."""
    return str(build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat")))


@pytest.fixture(scope="session")
def tool_chat_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of the tiny model trained to call get_weather."""
    return str(build_tool_calling_model(tmp_path_factory.mktemp("tiny-tools")))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of the tiny encoder directory."""
    return str(build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder")))
