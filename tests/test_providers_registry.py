"""The provider registry: built-ins, aliases, and providers added at run time."""

import pytest

from langchain_chatchat import ChatQwen, QwenEmbeddings
from langchain_chatchat.providers import (
    Provider,
    get_provider,
    register_provider,
    unregister_provider,
)


def test_builtins_and_aliases_resolve_lazily():
    assert get_provider("dashscope") is get_provider("qwen")
    assert get_provider("qwen").class_for("chat") is ChatQwen
    assert get_provider("tongyi").class_for("embeddings") is QwenEmbeddings


def test_unknown_provider_and_missing_kind_are_clear():
    with pytest.raises(LookupError, match="unknown provider 'qwenn'; known providers: .*qwen"):
        get_provider("qwenn")
    with pytest.raises(LookupError, match="deepseek.*no embeddings"):
        get_provider("deepseek").class_for("embeddings")


def test_register_and_unregister_at_run_time():
    acme = Provider(
        "acme-test", chat="langchain_chatchat.chat_models.qwen:ChatQwen", aliases=("acme-alias",)
    )
    register_provider(acme)
    try:
        assert (
            get_provider("acme-alias") is acme
            and get_provider("acme-test").class_for("chat") is ChatQwen
        )
    finally:
        unregister_provider(acme)
    with pytest.raises(LookupError):
        get_provider("acme-test")
