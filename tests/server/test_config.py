"""Config loading, construction errors, the default config and what `create_app` accepts."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from langchain_chatchat import ChatQwen, QwenEmbeddings
from langchain_chatchat.server import (
    ChatchatConfig,
    ConfigError,
    create_app,
    default_config,
    load_config,
)
from langchain_chatchat.server.defaults import CONFIG_ENV, default_chat_model
from langchain_chatchat.server.registry import ModelRegistry
from langchain_chatchat.testing import BackgroundServer

QWEN = {"name": "qwen-plus", "provider": "qwen", "params": {"api_key": "k"}}


def test_defaults_and_env_expansion(monkeypatch):
    monkeypatch.setenv("CHATCHAT_TEST_KEY", "sk-from-env")
    config = load_config(
        {
            "models": [
                {
                    "name": "a",
                    "provider": "qwen",
                    "params": {
                        "api_key": "${CHATCHAT_TEST_KEY}",
                        "base_url": "${CHATCHAT_TEST_URL:-http://x/api/v1}",
                    },
                },
                {"name": "b", "provider": "dashscope", "kind": "embeddings"},
            ]
        }
    )
    assert (config.server.host, config.server.port, config.server.api_keys) == (
        "127.0.0.1",
        20000,
        [],
    )
    assert config.models[0].params == {"api_key": "sk-from-env", "base_url": "http://x/api/v1"}
    assert config.models[0].kind == "chat"
    assert config.models[1].kind == "embeddings"


def test_load_from_yaml_file(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "server:\n  port: 8080\n  api_keys: [sk-1]\nmodels:\n  - {name: m, provider: qwen}\n"
    )
    config = load_config(path)
    assert config.server.port == 8080
    assert config.server.api_keys == ["sk-1"]
    assert load_config(config) is config


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"models": []}, "models: List should have at least 1 item"),
        ({"models": [QWEN], "sever": {}}, "sever: unknown key: did you mean server?"),
        ({"models": [{**QWEN, "name": "v1"}]}, "'v1' is reserved"),
        (
            {"models": [{**QWEN, "name": "a/b"}]},
            'models[0] "a/b".name: String should match pattern',
        ),
        ({"models": [QWEN, QWEN]}, 'models[1] "qwen-plus": the name is already used'),
        (
            {"models": [{**QWEN, "kind": "images"}]},
            "models[0] \"qwen-plus\".kind: Input should be 'chat' or 'embeddings'",
        ),
        ({"models": [{**QWEN, "provider": "nope"}]}, "unknown provider 'nope'; known providers: "),
        (
            {"models": [QWEN], "server": {"port": 70000}},
            "server.port: Input should be less than or equal to 65535",
        ),
        (
            {"models": [QWEN], "server": {"api_keys": [""]}},
            "server.api_keys: API keys must be non-empty strings",
        ),
    ],
)
def test_config_errors_name_the_entry(raw, message):
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    assert message in str(caught.value)


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("models:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML: .*line 3"):
        load_config(path)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"api_key": "k", "temperature": "hot"},
            'models[0] "qwen-plus".params: temperature: Input should be a valid number',
        ),
        ({"api_key": "k", "temprature": 0.5}, "ChatQwen has no parameter(s) temprature"),
        ({}, 'models[0] "qwen-plus": no DashScope API key'),
    ],
)
def test_construction_errors_name_the_entry(monkeypatch, params, message):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        ModelRegistry.from_config(load_config({"models": [{**QWEN, "params": params}]}))
    assert message in str(caught.value)


def test_registry_builds_each_model_once_with_its_params():
    registry = ModelRegistry.from_config(
        load_config(
            {
                "models": [
                    {**QWEN, "params": {"api_key": "k", "model": "qwen-max", "temperature": 0.2}},
                    {
                        "name": "e",
                        "provider": "qwen",
                        "kind": "embeddings",
                        "params": {"api_key": "k"},
                    },
                ]
            }
        )
    )
    chat = registry.get("qwen-plus", "chat").model
    assert isinstance(chat, ChatQwen)
    assert (chat.model, chat.temperature) == ("qwen-max", 0.2)
    assert registry.get("qwen-plus").model is chat
    assert isinstance(registry.get("e", "embeddings").model, QwenEmbeddings)


def test_default_config_serves_keyed_cloud_models(monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setattr("langchain_chatchat.server.defaults._local_available", lambda: False)
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="no models to serve"):
        default_config()
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env")
    assert [(m.name, m.kind) for m in default_config().models] == [
        ("qwen-plus", "chat"),
        ("text-embedding-v3", "embeddings"),
    ]
    assert isinstance(default_chat_model(), ChatQwen)


def test_default_config_prefers_local_models_when_installed(monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.setattr("langchain_chatchat.server.defaults._local_available", lambda: True)
    assert [(m.provider, m.kind) for m in default_config().models] == [
        ("local", "chat"),
        ("local", "embeddings"),
    ]


def test_chatchat_config_env_wins(monkeypatch, tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - {name: from-file, provider: qwen, params: {api_key: k}}\n")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert [m.name for m in default_config().models] == ["from-file"]
    assert create_app().state.registry.get("from-file").name == "from-file"


def test_create_app_accepts_dict_path_and_model(tmp_path: Path):
    raw = {"models": [QWEN]}
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - {name: qwen-plus, provider: qwen, params: {api_key: k}}\n")
    for source in (raw, path, str(path), ChatchatConfig.model_validate(raw)):
        assert [m.name for m in create_app(source).state.registry] == ["qwen-plus"]


@pytest.mark.real_model
def test_default_app_serves_the_offline_models_end_to_end(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with BackgroundServer(create_app()) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        question = [{"role": "user", "content": "Name the capital of France."}]
        reply = client.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=question, temperature=0, max_tokens=24
        )
        assert "Paris" in reply.choices[0].message.content
        assert 0 < reply.usage.completion_tokens <= 24 and reply.usage.prompt_tokens > 0
        stream = client.chat.completions.create(
            model="SmolLM2-135M-Instruct",
            messages=question,
            temperature=0,
            max_tokens=24,
            stream=True,
        )
        pieces = [
            c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
        ]
        assert len(pieces) > 3 and "".join(pieces) == reply.choices[0].message.content
        vectors = client.embeddings.create(model="all-MiniLM-L6-v2", input=["a", "b"]).data
        assert [len(item.embedding) for item in vectors] == [384, 384]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"server": {"prot": 1}, "models": [QWEN]},
            "server.prot: unknown key: did you mean port?",
        ),
        (
            {"models": [{**QWEN, "max_concurency": 2}]},
            'models[0] "qwen-plus".max_concurency: unknown key: did you mean max_concurrency?',
        ),
        (
            {"models": [{**QWEN, "timeout": {"raed": 1}}]},
            'models[0] "qwen-plus".timeout.raed: unknown key: did you mean read?',
        ),
        (
            {"models": [{**QWEN, "replicas": [{"porvider": "qwen"}]}]},
            "replicas[0].porvider: unknown key: did you mean provider?",
        ),
        (
            {"models": [{**QWEN, "zzz": 1}]},
            'models[0] "qwen-plus".zzz: unknown key; valid keys: fallbacks, health, kind,',
        ),
    ],
)
def test_misspelt_keys_get_the_closest_valid_one(raw, message):
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    assert message in str(caught.value)


def test_misspelt_params_get_the_closest_parameter():
    config = load_config(
        {"models": [{**QWEN, "params": {**QWEN["params"], "api_key": "k", "temprature": 0.2}}]}
    )
    with pytest.raises(ConfigError) as caught:
        ModelRegistry.from_config(config)
    assert "ChatQwen has no parameter(s) temprature: did you mean temperature?" in str(caught.value)
