"""`chatchat emulator NAME`: one of the shipped provider emulators (`langchain_chatchat.testing`)
as a standalone server, with a config snippet that points a model entry at it, so a provider
config can be tried offline without writing code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from langchain_chatchat.providers import get_provider
from langchain_chatchat.testing import DashScopeEmulator, OpenAICompatibleEmulator
from langchain_chatchat.testing.openai_compatible import PROFILES


@dataclass(frozen=True)
class Emulated:
    """A provider with an emulator: the models its snippet names."""

    provider: str
    chat_model: str
    embeddings_model: str | None = None


EMULATED: dict[str, Emulated] = {
    item.provider: item
    for item in (
        Emulated("qwen", "qwen-plus", "text-embedding-v3"),
        Emulated("openai_compatible", "qwen2.5-7b-instruct", "bge-m3"),
        Emulated("zhipu", "glm-4-flash", "embedding-3"),
        Emulated("qianfan", "ernie-4.0-turbo-8k", "embedding-v1"),
        Emulated("ark", "doubao-1-5-pro-32k-250115", "doubao-embedding-text-240715"),
        Emulated("deepseek", "deepseek-chat"),
        Emulated("moonshot", "moonshot-v1-8k"),
        Emulated("minimax", "MiniMax-Text-01", "embo-01"),
        Emulated("baichuan", "Baichuan4-Turbo", "Baichuan-Text-Embedding"),
        Emulated("spark", "generalv3.5"),
        Emulated("azure", "gpt-4o", "text-embedding-3-small"),
    )
}
assert set(EMULATED) == {"qwen", *PROFILES}, "every emulator profile is listed"


def resolve(name: str) -> Emulated:
    """The emulated provider for a provider name or alias ("dashscope" → qwen)."""
    try:
        canonical = get_provider(name).name
    except LookupError:
        canonical = name
    if canonical not in EMULATED:
        raise LookupError(f"no emulator for {name!r}; emulated providers: {', '.join(EMULATED)}")
    return EMULATED[canonical]


def start(emulated: Emulated, port: int = 0) -> DashScopeEmulator | OpenAICompatibleEmulator:
    """Start the provider's emulator on 127.0.0.1 (`port` 0: any free port)."""
    emulator: DashScopeEmulator | OpenAICompatibleEmulator
    if emulated.provider == "qwen":
        emulator = DashScopeEmulator()
    else:
        emulator = OpenAICompatibleEmulator(emulated.provider)
    return emulator.start(port=port)


def connection(emulated: Emulated, emulator: Any) -> dict[str, Any]:
    """The `params` that point a model entry at the running emulator."""
    params: dict[str, Any] = {"api_key": emulator.api_key}
    if emulated.provider == "azure":
        params["azure_endpoint"] = emulator.url
    else:
        params["base_url"] = emulator.base_url
    if emulated.provider == "minimax":
        params["group_id"] = "test-group"
    return params


def config_snippet(emulated: Emulated, emulator: Any) -> str:
    """A complete `chatchat.yaml` serving the emulated provider's chat (and embeddings) model."""
    params = connection(emulated, emulator)
    models: list[dict[str, Any]] = [
        {
            "name": emulated.chat_model,
            "provider": emulated.provider,
            "params": {"model": emulated.chat_model, **params},
        }
    ]
    if emulated.embeddings_model:
        models.append(
            {
                "name": emulated.embeddings_model,
                "provider": emulated.provider,
                "kind": "embeddings",
                "params": {"model": emulated.embeddings_model, **params},
            }
        )
    return yaml.safe_dump({"models": models}, sort_keys=False, width=1000)
