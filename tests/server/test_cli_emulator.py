"""`chatchat emulator`: every emulated provider's snippet serves chat (and embeddings)."""

from __future__ import annotations

import openai
import pytest
import yaml

from langchain_chatchat import cli_emulator
from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer


@pytest.mark.parametrize("name", list(cli_emulator.EMULATED))
def test_every_snippet_serves_its_models(name: str) -> None:
    emulated = cli_emulator.resolve(name)
    emulator = cli_emulator.start(emulated)
    try:
        config = yaml.safe_load(cli_emulator.config_snippet(emulated, emulator))
        with BackgroundServer(create_app(config)) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
            reply = client.chat.completions.create(
                model=emulated.chat_model, messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content
            if emulated.embeddings_model:
                vectors = client.embeddings.create(model=emulated.embeddings_model, input="x")
                assert vectors.data[0].embedding
    finally:
        emulator.stop()


def test_aliases_resolve() -> None:
    assert cli_emulator.resolve("dashscope").provider == "qwen"
    assert cli_emulator.resolve("glm").provider == "zhipu"
    with pytest.raises(LookupError, match="emulated providers: qwen"):
        cli_emulator.resolve("nosuch")
