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
    Provider(
        "local",
        chat="langchain_chatchat.chat_models.local:ChatLocal",
        embeddings="langchain_chatchat.embeddings.local:LocalEmbeddings",
        aliases=("huggingface",),
    ),
    Provider(
        "openai_compatible",
        chat="langchain_chatchat.chat_models.openai_compatible:ChatOpenAICompatible",
        embeddings="langchain_chatchat.embeddings.openai_compatible:OpenAICompatibleEmbeddings",
        aliases=(
            "openai-compatible",
            "vllm",
            "ollama",
            "xinference",
            "localai",
            "one-api",
            "oneapi",
            "lmstudio",
        ),
    ),
    Provider(
        "zhipu",
        chat="langchain_chatchat.chat_models.zhipu:ChatZhipu",
        embeddings="langchain_chatchat.embeddings.zhipu:ZhipuEmbeddings",
        aliases=("zhipuai", "glm", "bigmodel", "zhipu-api"),
    ),
    Provider(
        "qianfan",
        chat="langchain_chatchat.chat_models.qianfan:ChatQianfan",
        embeddings="langchain_chatchat.embeddings.qianfan:QianfanEmbeddings",
        aliases=("ernie", "wenxin", "baidu", "qianfan-api"),
    ),
    Provider(
        "ark",
        chat="langchain_chatchat.chat_models.ark:ChatArk",
        embeddings="langchain_chatchat.embeddings.ark:ArkEmbeddings",
        aliases=("volcengine", "doubao", "fangzhou"),
    ),
    Provider("deepseek", chat="langchain_chatchat.chat_models.deepseek:ChatDeepSeek"),
    Provider(
        "moonshot", chat="langchain_chatchat.chat_models.moonshot:ChatMoonshot", aliases=("kimi",)
    ),
    Provider(
        "minimax",
        chat="langchain_chatchat.chat_models.minimax:ChatMiniMax",
        embeddings="langchain_chatchat.embeddings.minimax:MiniMaxEmbeddings",
        aliases=("minimax-api",),
    ),
    Provider(
        "baichuan",
        chat="langchain_chatchat.chat_models.baichuan:ChatBaichuan",
        embeddings="langchain_chatchat.embeddings.baichuan:BaichuanEmbeddings",
        aliases=("baichuan-api",),
    ),
    Provider(
        "spark",
        chat="langchain_chatchat.chat_models.spark:ChatSpark",
        embeddings="langchain_chatchat.embeddings.spark:SparkEmbeddings",
        aliases=("xinghuo", "iflytek", "xinghuo-api"),
    ),
    Provider(
        "gemini",
        chat="langchain_chatchat.chat_models.gemini:ChatGemini",
        embeddings="langchain_chatchat.embeddings.gemini:GeminiEmbeddings",
        aliases=("google", "google-genai", "gemini-api"),
    ),
    Provider(
        "azure",
        chat="langchain_chatchat.chat_models.azure:ChatAzureOpenAI",
        embeddings="langchain_chatchat.embeddings.azure:AzureOpenAIEmbeddings",
        aliases=("azure_openai", "azure-openai", "azure-api"),
    ),
)


@cache
def registry() -> dict[str, Provider]:
    """Every known provider by name and alias; entry points may add or override."""
    providers = list(BUILTIN_PROVIDERS)
    for entry in entry_points(group="langchain_chatchat.providers"):
        provider = entry.load()
        if not isinstance(provider, Provider):
            raise TypeError(
                f"entry point {entry.name!r} must load a langchain_chatchat.providers.Provider"
            )
        providers.append(provider)
    table: dict[str, Provider] = {}
    for provider in providers:
        for name in (provider.name, *provider.aliases):
            table[name] = provider
    return table


def register_provider(provider: Provider) -> None:
    """Add (or replace) a provider in this process, for notebooks and tests.

    Installed packages should declare an entry point instead, so every process sees them.
    """
    table = registry()
    for name in (provider.name, *provider.aliases):
        table[name] = provider


def unregister_provider(provider: Provider) -> None:
    """Undo `register_provider` (built-in and entry-point providers are not restored)."""
    table = registry()
    for name in (provider.name, *provider.aliases):
        if table.get(name) is provider:
            del table[name]


def get_provider(name: str) -> Provider:
    try:
        return registry()[name]
    except KeyError:
        known = ", ".join(sorted({p.name for p in registry().values()}))
        raise LookupError(f"unknown provider {name!r}; known providers: {known}") from None
