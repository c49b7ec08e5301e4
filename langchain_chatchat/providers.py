"""Provider registry: a config's `provider: qwen` → the chat-model / embeddings class.

Classes are named by import path and imported on first use, so listing providers never
imports torch or an SDK that a config does not use. Other packages add providers through the
`langchain_chatchat.providers` entry-point group; each entry point loads a `Provider`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Literal

Kind = Literal["chat", "embeddings"]


@dataclass(frozen=True)
class Provider:
    name: str
    chat: str | None = None
    """`module:Class` of the chat model, if the provider has one."""
    embeddings: str | None = None
    """`module:Class` of the embeddings, if the provider has one."""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def class_for(self, kind: Kind) -> type:
        path = self.chat if kind == "chat" else self.embeddings
        if path is None:
            raise LookupError(f"provider {self.name!r} has no {kind} models")
        module, _, attr = path.partition(":")
        return getattr(importlib.import_module(module), attr)


BUILTIN_PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "qwen",
        chat="langchain_chatchat.chat_models.qwen:ChatQwen",
        embeddings="langchain_chatchat.embeddings.qwen:QwenEmbeddings",
        aliases=("dashscope", "tongyi"),
    ),
)


@cache
def registry() -> dict[str, Provider]:
    """Every known provider by name and alias; entry points may add or override."""
    providers = list(BUILTIN_PROVIDERS)
    for entry in entry_points(group="langchain_chatchat.providers"):
        provider = entry.load()
        if not isinstance(provider, Provider):
            raise TypeError(f"entry point {entry.name!r} must load a langchain_chatchat.providers.Provider")
        providers.append(provider)
    table: dict[str, Provider] = {}
    for provider in providers:
        for name in (provider.name, *provider.aliases):
            table[name] = provider
    return table


def get_provider(name: str) -> Provider:
    try:
        return registry()[name]
    except KeyError:
        known = ", ".join(sorted({p.name for p in registry().values()}))
        raise LookupError(f"unknown provider {name!r}; known providers: {known}") from None
