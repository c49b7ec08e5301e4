"""langchain-tests standard suites for every chat model and embeddings class, each against its
provider's emulator profile. Capabilities come from the worker classes, not from the tests."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.load import dumpd, dumps, load
from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests

from tests.vision.standard import StandardImages

from .support import SPECS, connection, running


class _Chat(StandardImages):
    provider: str

    @property
    def chat_model_class(self) -> type:
        return SPECS[self.provider].chat

    @property
    def has_tool_choice(self) -> bool:
        return bool({"required", "named"} & self.chat_model_class.worker_class.tool_choices)

    @property
    def supports_json_mode(self) -> bool:
        return "json_object" in self.chat_model_class.worker_class.response_formats

    @property
    def tested_model(self) -> str:
        return SPECS[self.provider].model


def _offline(model: str | None, provider: str) -> dict[str, Any]:
    """Constructor arguments pointing at a closed port (the unit suites never connect)."""
    params: dict[str, Any] = {"model": model, "base_url": "http://127.0.0.1:9/v1"}
    if provider == "azure":
        params["azure_endpoint"] = "http://127.0.0.1:9"
    return params


def _from_env(model: str | None, provider: str) -> tuple[dict, dict, dict]:
    return (
        {SPECS[provider].key_env: "sk-from-env"},
        _offline(model, provider),
        {"api_key": "sk-from-env"},
    )


class _ChatUnit(_Chat, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {**_offline(SPECS[self.provider].model, self.provider), "api_key": "sk-unit-test"}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return _from_env(SPECS[self.provider].model, self.provider)

    @pytest.mark.xfail(
        reason="langchain-core's load() default allowlist admits only its own partner packages; "
        "the round trip with allowed_objects=[cls] is checked in test_serialization_round_trip",
        strict=True,
    )
    def test_serdes(self, *args: Any) -> None:
        super().test_serdes(*args)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_serialization_round_trip(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SPECS[name]
    cls = spec.chat
    monkeypatch.setenv(spec.key_env, "sk-from-env")
    model = cls(temperature=0.2, **_offline(spec.model, name))
    assert "sk-from-env" not in dumps(model)
    restored = load(
        dumpd(model),
        allowed_objects=[cls],
        valid_namespaces=["langchain_chatchat"],
        secrets_map={spec.key_env: "sk-from-env"},
    )
    assert isinstance(restored, cls) and restored.model_dump() == model.model_dump()
    assert restored.api_key.get_secret_value() == "sk-from-env"


class _ChatIntegration(_Chat, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": self.tested_model, **connection(running(self.provider))}

    @property
    def model_override_value(self) -> str | None:
        return None if self.provider == "azure" else self.tested_model + "-alt"

    def image_emulators(self) -> list[Any]:
        return [running(self.provider)]


class _Embeddings:
    provider: str

    @property
    def embeddings_class(self) -> type:
        return SPECS[self.provider].embeddings  # type: ignore[return-value]


class _EmbeddingsUnit(_Embeddings, EmbeddingsUnitTests):
    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {
            **_offline(SPECS[self.provider].embedding_model, self.provider),
            "api_key": "sk-unit-test",
        }

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return _from_env(SPECS[self.provider].embedding_model, self.provider)


class _EmbeddingsIntegration(_Embeddings, EmbeddingsIntegrationTests):
    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": SPECS[self.provider].embedding_model, **connection(running(self.provider))}


# fmt: off
class TestChatOpenAICompatibleUnit(_ChatUnit): provider = "openai_compatible"
class TestChatOpenAICompatibleIntegration(_ChatIntegration): provider = "openai_compatible"
class TestChatZhipuUnit(_ChatUnit): provider = "zhipu"
class TestChatZhipuIntegration(_ChatIntegration): provider = "zhipu"
class TestChatQianfanUnit(_ChatUnit): provider = "qianfan"
class TestChatQianfanIntegration(_ChatIntegration): provider = "qianfan"
class TestChatArkUnit(_ChatUnit): provider = "ark"
class TestChatArkIntegration(_ChatIntegration): provider = "ark"
class TestChatDeepSeekUnit(_ChatUnit): provider = "deepseek"
class TestChatDeepSeekIntegration(_ChatIntegration): provider = "deepseek"
class TestChatMoonshotUnit(_ChatUnit): provider = "moonshot"
class TestChatMoonshotIntegration(_ChatIntegration): provider = "moonshot"
class TestChatMiniMaxUnit(_ChatUnit): provider = "minimax"
class TestChatMiniMaxIntegration(_ChatIntegration): provider = "minimax"
class TestChatBaichuanUnit(_ChatUnit): provider = "baichuan"
class TestChatBaichuanIntegration(_ChatIntegration): provider = "baichuan"
class TestChatSparkUnit(_ChatUnit): provider = "spark"
class TestChatSparkIntegration(_ChatIntegration): provider = "spark"
class TestChatAzureOpenAIUnit(_ChatUnit): provider = "azure"
class TestChatAzureOpenAIIntegration(_ChatIntegration): provider = "azure"

# The same suites on each provider's vision models (image switches on by the worker's rules).
class TestChatZhipuVisionIntegration(_ChatIntegration): provider, tested_model = "zhipu", "glm-4v-plus"
class TestChatQianfanVisionIntegration(_ChatIntegration): provider, tested_model = "qianfan", "ernie-4.5-turbo-vl-32k"
class TestChatArkVisionIntegration(_ChatIntegration): provider, tested_model = "ark", "doubao-seed-1-6-250615"
class TestChatMoonshotVisionIntegration(_ChatIntegration): provider, tested_model = "moonshot", "moonshot-v1-8k-vision-preview"
class TestChatMiniMaxVisionIntegration(_ChatIntegration): provider, tested_model = "minimax", "MiniMax-VL-01"
class TestChatOpenAICompatibleAudioIntegration(_ChatIntegration): provider, tested_model = "openai_compatible", "gpt-4o-audio-preview"

class TestOpenAICompatibleEmbeddingsUnit(_EmbeddingsUnit): provider = "openai_compatible"
class TestOpenAICompatibleEmbeddingsIntegration(_EmbeddingsIntegration): provider = "openai_compatible"
class TestZhipuEmbeddingsUnit(_EmbeddingsUnit): provider = "zhipu"
class TestZhipuEmbeddingsIntegration(_EmbeddingsIntegration): provider = "zhipu"
class TestQianfanEmbeddingsUnit(_EmbeddingsUnit): provider = "qianfan"
class TestQianfanEmbeddingsIntegration(_EmbeddingsIntegration): provider = "qianfan"
class TestArkEmbeddingsUnit(_EmbeddingsUnit): provider = "ark"
class TestArkEmbeddingsIntegration(_EmbeddingsIntegration): provider = "ark"
class TestMiniMaxEmbeddingsUnit(_EmbeddingsUnit): provider = "minimax"
class TestMiniMaxEmbeddingsIntegration(_EmbeddingsIntegration): provider = "minimax"
class TestBaichuanEmbeddingsUnit(_EmbeddingsUnit): provider = "baichuan"
class TestBaichuanEmbeddingsIntegration(_EmbeddingsIntegration): provider = "baichuan"
class TestAzureOpenAIEmbeddingsUnit(_EmbeddingsUnit): provider = "azure"
class TestAzureOpenAIEmbeddingsIntegration(_EmbeddingsIntegration): provider = "azure"
# fmt: on
