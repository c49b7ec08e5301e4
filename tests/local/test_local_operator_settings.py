"""A served local model's operator settings (engine, device, caches, limits, template, files)
cannot be set by a request: not in a /v1 body, not through LangServe's kwargs or configurable."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer

LOCAL_OPERATOR_FIELDS: dict[str, Any] = {
    "prompt_cache": False,
    "engine": "llama_cpp",
    "device": "cuda",
    "dtype": "float16",
    "device_map": "auto",
    "quantization": "4bit",
    "max_batch_size": 99,
    "max_queue": 1,
    "default_max_tokens": None,
    "chat_template": "{{ messages }}",
    "gguf_file": "/etc/passwd",
    "model_name": "/etc",
}


@pytest.fixture(scope="module")
def server(tiny_chat_model: str):
    config = {
        "models": [{"name": "tiny", "provider": "local", "params": {"model": tiny_chat_model}}]
    }
    with BackgroundServer(create_app(config)) as running:
        yield running


@pytest.mark.parametrize("field", sorted(LOCAL_OPERATOR_FIELDS))
def test_local_operator_settings_are_400_on_every_protocol(server, field: str) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=2,
            extra_body={field: LOCAL_OPERATOR_FIELDS[field]},
        )
    assert refused.value.body["param"] == field
    for body in (
        {"input": "hi", "kwargs": {field: LOCAL_OPERATOR_FIELDS[field]}},
        {"input": "hi", "config": {"configurable": {field: LOCAL_OPERATOR_FIELDS[field]}}},
    ):
        response = httpx.post(f"{server.url}/tiny/invoke", json=body)
        assert response.status_code == 400, (body, response.text)
    # the same request without the field is served
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert reply.usage.completion_tokens >= 1
