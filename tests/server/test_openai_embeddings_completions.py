"""/v1/embeddings, /v1/completions and /v1/models through the official openai SDK."""

from __future__ import annotations

import base64
import struct

import httpx
import openai
import pytest

from tests.server.conftest import API_KEY, sent


def test_models_lists_every_configured_model(client):
    models = {model.id: model for model in client.models.list()}
    assert {"qwen-plus", "qwen-turbo", "text-embedding-v3"} <= set(models)
    assert models["qwen-plus"].owned_by == "qwen"
    assert client.models.retrieve("text-embedding-v3").id == "text-embedding-v3"


def test_embeddings_float_for_a_list(client, emulator):
    result = client.embeddings.create(
        model="text-embedding-v3", input=["first", "second"], encoding_format="float"
    )
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 1024 for item in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.model == "text-embedding-v3"
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0  # the provider's count
    assert sent(emulator)["input"]["texts"] == ["first", "second"]


def test_embeddings_base64_decodes_to_the_float_vector(server_url, client):
    floats = client.embeddings.create(
        model="text-embedding-v3", input="same text", encoding_format="float"
    ).data[0]
    response = httpx.post(
        f"{server_url}/v1/embeddings",
        json={"model": "text-embedding-v3", "input": "same text", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    encoded = response.json()["data"][0]["embedding"]
    raw = base64.b64decode(encoded)
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats.embedding, rel=1e-6)
    # The SDK asks for base64 by default and decodes it itself.
    assert client.embeddings.create(model="text-embedding-v3", input="same text").data[
        0
    ].embedding == pytest.approx(floats.embedding, rel=1e-6)


async def test_embeddings_dimensions_async(aclient, emulator):
    result = await aclient.embeddings.create(
        model="text-embedding-v3", input=["a", "b", "c"], dimensions=256
    )
    assert [len(item.embedding) for item in result.data] == [256, 256, 256]
    assert sent(emulator)["parameters"]["dimension"] == 256


def test_embeddings_token_arrays_are_refused(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-v3", input=[[1, 2, 3]])
    assert caught.value.body["param"] == "input"


def test_completions_keep_the_system_prompt(client, emulator):
    prompt = "You are a pirate.\n### Human: hello\n### Assistant:"
    result = client.completions.create(model="qwen-plus", prompt=prompt)
    assert result.object == "text_completion"
    assert result.choices[0].text == "Hello! You said: hello"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage.total_tokens > 0
    assert sent(emulator)["input"]["messages"] == [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "hello"},
    ]


def test_completions_several_prompts_and_stream(client, emulator):
    result = client.completions.create(
        model="qwen-plus", prompt=["USER: one\nASSISTANT:", "USER: two\nASSISTANT:"]
    )
    assert [(c.index, c.text) for c in result.choices] == [
        (0, "Hello! You said: one"),
        (1, "Hello! You said: two"),
    ]
    chunks = list(
        client.completions.create(
            model="qwen-plus",
            prompt="hi there",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello! You said: hi there"
    assert chunks[-1].usage.total_tokens > 0


@pytest.mark.parametrize("option", [{"echo": True}, {"best_of": 2}, {"n": 3}])
def test_completions_unsupported_options_are_400(client, option):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="qwen-plus", prompt="hi", **option)
