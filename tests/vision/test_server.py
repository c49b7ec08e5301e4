"""Images over HTTP: the openai SDK through /v1/chat/completions and RemoteRunnable through the
LangServe routes, to vision models on the emulators, which name the image they decoded."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage
from langserve import RemoteRunnable

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator
from langchain_chatchat.testing.openai_compatible import OpenAICompatibleEmulator

from .conftest import b64, data_url, image_bytes, seen
from .videos import wav_bytes

API_KEY = "sk-vision-test"
MAX_BODY = 512 * 1024


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[DashScopeEmulator, ...]]:
    with (
        DashScopeEmulator() as dashscope,
        OpenAICompatibleEmulator("zhipu") as zhipu,
        OpenAICompatibleEmulator() as openai_style,
    ):
        yield dashscope, zhipu, openai_style


@pytest.fixture(scope="module")
def server_url(upstreams) -> Iterator[str]:
    dashscope, zhipu, openai_style = upstreams
    qwen = {"api_key": dashscope.api_key, "base_url": dashscope.base_url, "max_retries": 0}
    glm = {"api_key": zhipu.api_key, "base_url": zhipu.base_url, "max_retries": 0}
    audio = {"api_key": openai_style.api_key, "base_url": openai_style.base_url, "max_retries": 0}
    config = {
        "server": {"api_keys": [API_KEY], "max_body_size": MAX_BODY},
        "models": [
            {"name": "qwen-vl-max", "provider": "qwen", "params": {"model": "qwen-vl-max", **qwen}},
            {"name": "qwen-plus", "provider": "qwen", "params": {"model": "qwen-plus", **qwen}},
            {"name": "glm-4v-plus", "provider": "zhipu", "params": {"model": "glm-4v-plus", **glm}},
            {
                "name": "gpt-4o-audio-preview",
                "provider": "openai_compatible",
                "params": {"model": "gpt-4o-audio-preview", **audio},
            },
        ],
    }
    with BackgroundServer(create_app(config)) as server:
        yield server.url


@pytest.fixture
def client(server_url) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server_url}/v1", api_key=API_KEY, max_retries=0) as client:
        yield client


def _content(url: str, **image) -> list[dict]:
    return [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": url, **image}},
    ]


@pytest.mark.parametrize("model", ["qwen-vl-max", "glm-4v-plus"])
def test_openai_sdk_sends_images_through_v1(client, model):
    png = image_bytes("PNG", (64, 40))
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": _content(data_url(png), detail="high")}]
    )
    assert reply.choices[0].message.content.startswith(f"I see 1 image(s): {seen(png)}.")
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": _content(data_url(png))}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith(f"I see 1 image(s): {seen(png)}.")


def _usage_of(client, model: str, content: list[dict], *, stream: bool) -> dict:
    messages = [{"role": "user", "content": content}]
    if not stream:
        return client.chat.completions.create(model=model, messages=messages).usage.model_dump()
    chunks = list(
        client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and all(c.usage is None for c in chunks[:-1])
    return chunks[-1].usage.model_dump()


@pytest.mark.parametrize("stream", [False, True])
def test_media_tokens_in_v1_usage(client, stream):
    png = image_bytes("PNG", (280, 56))  # 10x2 tiles of 28 px, plus the vision start/end tokens
    usage = _usage_of(client, "qwen-vl-max", _content(data_url(png)), stream=stream)
    assert usage["prompt_tokens_details"]["image_tokens"] == 22
    assert usage["prompt_tokens"] > 22
    assert usage["prompt_tokens_details"].get("audio_tokens") is None
    colors = ("red", "green", "blue", "white")
    frames = [data_url(image_bytes("PNG", (56, 56), color)) for color in colors]
    video = [{"type": "text", "text": "what happens?"}, {"type": "video", "video": frames}]
    details = _usage_of(client, "qwen-vl-max", video, stream=stream)["prompt_tokens_details"]
    assert details["video_tokens"] == 4 * (4 + 2) and details.get("image_tokens") is None
    sound = {"type": "input_audio", "input_audio": {"data": b64(wav_bytes(1.5)), "format": "wav"}}
    speech = [{"type": "text", "text": "transcribe"}, sound]
    details = _usage_of(client, "gpt-4o-audio-preview", speech, stream=stream)
    assert details["prompt_tokens_details"]["audio_tokens"] == 15  # 1.5 s at 10 per second


@pytest.mark.parametrize("stream", [False, True])
def test_text_only_usage_has_no_media_details(client, stream):
    text = [{"type": "text", "text": "hello"}]
    assert _usage_of(client, "qwen-plus", text, stream=stream)["prompt_tokens_details"] is None


def test_image_urls_reach_the_provider(client, upstreams, image_host):
    jpeg = image_bytes("JPEG", (90, 60), "purple")
    url = image_host.add("/server/photo.jpg", jpeg, "image/jpeg")
    reply = client.chat.completions.create(
        model="qwen-vl-max", messages=[{"role": "user", "content": _content(url)}]
    )
    assert seen(jpeg, "jpeg") in reply.choices[0].message.content


@pytest.mark.parametrize(
    ("model", "content", "text"),
    [
        ("qwen-plus", _content(data_url(image_bytes())), "does not accept image input"),
        ("glm-4v-plus", _content(data_url(image_bytes("GIF"))), "gif images are not accepted"),
        ("qwen-vl-max", _content(data_url(b"not an image")), "not a recognised image"),
        ("qwen-vl-max", _content("file:///etc/hostname"), "file:// media URLs are not accepted"),
        ("qwen-vl-max", _content(data_url(image_bytes()), detail="ultra"), "detail"),
        ("qwen-vl-max", [{"type": "file", "file": {"file_id": "f"}}], "content"),
    ],
)
def test_bad_images_are_openai_400s(client, upstreams, model, content, text):
    before = [len(upstream.requests) for upstream in upstreams]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    assert text in str(caught.value.body)
    assert [len(upstream.requests) for upstream in upstreams] == before


def test_oversized_bodies_are_413(client):
    huge = image_bytes() + b"\0" * MAX_BODY
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="qwen-vl-max", messages=[{"role": "user", "content": _content(data_url(huge))}]
        )
    assert caught.value.status_code == 413


@pytest.fixture
def remote(server_url) -> Iterator[RemoteRunnable]:
    runnable = RemoteRunnable(
        f"{server_url}/qwen-vl-max", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    yield runnable
    runnable.sync_client.close()


def test_remote_runnable_sends_langchain_image_blocks(remote):
    png = image_bytes("PNG", (33, 44))
    block = {"type": "image", "base64": data_url(png).split(",")[1], "mime_type": "image/png"}
    message = HumanMessage(content=[{"type": "text", "text": "what is it?"}, block])
    reply = remote.invoke([message])
    assert reply.content.startswith(f"I see 1 image(s): {seen(png)}.")
    assert reply.usage_metadata["input_token_details"] == {"image": 2 * 2 + 2}
    streamed = "".join(chunk.content for chunk in remote.stream([message]))
    assert streamed.startswith(f"I see 1 image(s): {seen(png)}.")


def test_remote_runnable_cannot_read_server_files(remote, server_url):
    message = {"type": "human", "content": [{"type": "image", "url": "file:///etc/hostname"}]}
    answer = httpx.post(
        f"{server_url}/qwen-vl-max/invoke",
        json={"input": [message]},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert answer.status_code == 400
    assert "file:// media URLs are not accepted" in answer.text
