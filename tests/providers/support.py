"""The provider family under test and the session's emulators (one per profile)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_chatchat.chat_models.ark import ChatArk
from langchain_chatchat.chat_models.azure import ChatAzureOpenAI
from langchain_chatchat.chat_models.baichuan import ChatBaichuan
from langchain_chatchat.chat_models.deepseek import ChatDeepSeek
from langchain_chatchat.chat_models.minimax import ChatMiniMax
from langchain_chatchat.chat_models.moonshot import ChatMoonshot
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.chat_models.qianfan import ChatQianfan
from langchain_chatchat.chat_models.spark import ChatSpark
from langchain_chatchat.chat_models.zhipu import ChatZhipu
from langchain_chatchat.embeddings.ark import ArkEmbeddings
from langchain_chatchat.embeddings.azure import AzureOpenAIEmbeddings
from langchain_chatchat.embeddings.baichuan import BaichuanEmbeddings
from langchain_chatchat.embeddings.minimax import MiniMaxEmbeddings
from langchain_chatchat.embeddings.openai_compatible import OpenAICompatibleEmbeddings
from langchain_chatchat.embeddings.qianfan import QianfanEmbeddings
from langchain_chatchat.embeddings.zhipu import ZhipuEmbeddings
from langchain_chatchat.testing.openai_compatible import OpenAICompatibleEmulator


@dataclass(frozen=True)
class Spec:
    """A provider under test: its classes, models and the env var its key comes from."""

    name: str
    chat: type
    model: str
    key_env: str
    embeddings: type | None = None
    embedding_model: str | None = None


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec(
            "openai_compatible",
            ChatOpenAICompatible,
            "qwen2.5-7b-instruct",
            "OPENAI_API_KEY",
            OpenAICompatibleEmbeddings,
            "bge-m3",
        ),
        Spec("zhipu", ChatZhipu, "glm-4-flash", "ZHIPUAI_API_KEY", ZhipuEmbeddings, "embedding-3"),
        Spec(
            "qianfan",
            ChatQianfan,
            "ernie-4.0-turbo-8k",
            "QIANFAN_API_KEY",
            QianfanEmbeddings,
            "embedding-v1",
        ),
        Spec(
            "ark",
            ChatArk,
            "doubao-seed-1-6-250615",
            "ARK_API_KEY",
            ArkEmbeddings,
            "doubao-embedding-text-240715",
        ),
        Spec("deepseek", ChatDeepSeek, "deepseek-chat", "DEEPSEEK_API_KEY"),
        Spec("moonshot", ChatMoonshot, "moonshot-v1-8k", "MOONSHOT_API_KEY"),
        Spec(
            "minimax",
            ChatMiniMax,
            "MiniMax-Text-01",
            "MINIMAX_API_KEY",
            MiniMaxEmbeddings,
            "embo-01",
        ),
        Spec(
            "baichuan",
            ChatBaichuan,
            "Baichuan4-Turbo",
            "BAICHUAN_API_KEY",
            BaichuanEmbeddings,
            "Baichuan-Text-Embedding",
        ),
        Spec("spark", ChatSpark, "generalv3.5", "IFLYTEK_SPARK_API_PASSWORD"),
        Spec(
            "azure",
            ChatAzureOpenAI,
            "gpt-4o",
            "AZURE_OPENAI_API_KEY",
            AzureOpenAIEmbeddings,
            "text-embedding-3-small",
        ),
    )
}
EMBEDDING_SPECS = {name: spec for name, spec in SPECS.items() if spec.embeddings is not None}

_RUNNING: dict[str, OpenAICompatibleEmulator] = {}


def running(name: str) -> OpenAICompatibleEmulator:
    """The session's emulator for a profile, started on first use."""
    if name not in _RUNNING:
        _RUNNING[name] = OpenAICompatibleEmulator(name).start()
    return _RUNNING[name]


def connection(emulator: OpenAICompatibleEmulator, **extra: Any) -> dict[str, Any]:
    """Constructor arguments that point a provider class at its emulator."""
    kwargs: dict[str, Any] = {"api_key": emulator.api_key, **extra}
    if emulator.profile.name == "azure":
        kwargs["azure_endpoint"] = emulator.url
    else:
        kwargs["base_url"] = emulator.base_url
    if emulator.profile.name == "minimax":
        kwargs.setdefault("group_id", "test-group")
    return kwargs


def chat_for(name: str, **extra: Any) -> Any:
    spec, emulator = SPECS[name], running(name)
    model = extra.pop("model", spec.model)
    return spec.chat(model=model, **connection(emulator, **{"max_retries": 0, **extra}))


def embeddings_for(name: str, **extra: Any) -> Any:
    spec, emulator = SPECS[name], running(name)
    model = extra.pop("model", spec.embedding_model)
    return spec.embeddings(model=model, **connection(emulator, **{"max_retries": 0, **extra}))  # type: ignore[misc]


def sent(emulator: OpenAICompatibleEmulator, index: int = -1) -> dict[str, Any]:
    """The JSON body of a request the emulator received."""
    body = emulator.requests[index].body
    assert body is not None
    return body
