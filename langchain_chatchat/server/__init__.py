"""The chatchat server: OpenAI-compatible and LangServe routes over the same LangChain models."""

from langchain_chatchat.server.app import create_app
from langchain_chatchat.server.config import (
    ChatchatConfig,
    ConfigError,
    ModelConfig,
    ServerSettings,
    load_config,
)
from langchain_chatchat.server.defaults import default_config

__all__ = [
    "ChatchatConfig",
    "ConfigError",
    "ModelConfig",
    "ServerSettings",
    "create_app",
    "default_config",
    "load_config",
]
