"""Images through every OpenAI-style provider class to its emulator, which decodes them: the
reply names the image's format, size and hash, so a test passes only if the bytes arrived."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage
from zhipuai import ZhipuAI

from langchain_chatchat.testing.openai_compatible import OpenAICompatibleEmulator
from langchain_chatchat.workers.errors import BadRequestError
from tests.providers.support import SPECS, connection

from .conftest import b64, data_url, image_bytes, seen

# provider → (a vision model, a text-only model or None when every model may take images)
MODELS = {
    "openai_compatible": ("qwen2.5-vl-7b-instruct", None),
    "azure": ("gpt-4o", "gpt-35-turbo"),
    "zhipu": ("glm-4v-plus", "glm-4-flash"),
    "ark": ("doubao-1-5-vision-pro-32k-250115", "doubao-1-5-pro-32k-250115"),
    "moonshot": ("moonshot-v1-8k-vision-preview", "moonshot-v1-8k"),
    "qianfan": ("ernie-4.5-turbo-vl-32k", "ernie-4.0-turbo-8k"),
    "minimax": ("MiniMax-VL-01", "MiniMax-Text-01"),
}
TEXT_ONLY = {"deepseek": "deepseek-chat", "baichuan": "Baichuan4-Turbo", "spark": "generalv3.5"}
URL_IMAGES = sorted(set(MODELS) - {"moonshot"})  # Kimi takes base64 only


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, OpenAICompatibleEmulator]]:
    running = {name: OpenAICompatibleEmulator(name).start() for name in [*MODELS, *TEXT_ONLY]}
    yield running
    for emulator in running.values():
        emulator.stop()


def _chat(emulators, provider: str, model: str):
    emulator = emulators[provider]
    emulator.reset()
    return SPECS[provider].chat(model=model, **connection(emulator, max_retries=0)), emulator


def _ask(*images: dict) -> list[HumanMessage]:
    return [HumanMessage(content=[{"type": "text", "text": "What is in the picture?"}, *images])]


def _image(url: str, **extra) -> dict:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_base64_image_arrives_intact(emulators, provider):
    llm, emulator = _chat(emulators, provider, MODELS[provider][0])
    png = image_bytes("PNG", (64, 48))
    jpeg = image_bytes("JPEG", (50, 70), "green")
    reply = llm.invoke(
        _ask(
            {"type": "image", "base64": b64(png), "mime_type": "image/png"}, _image(data_url(jpeg))
        )
    )
    assert f"I see 2 image(s): {seen(png)}; {seen(jpeg, 'jpeg')}." in reply.content
    streamed = "".join(chunk.content for chunk in llm.stream(_ask(_image(data_url(png)))))
    assert streamed.startswith(f"I see 1 image(s): {seen(png)}.")
    wire = emulator.requests[-1].body["messages"][0]["content"][1]["image_url"]["url"]
    assert wire == (b64(png) if provider == "zhipu" else data_url(png))


async def test_async_image_arrives_intact(emulators):
    llm, _ = _chat(emulators, "ark", MODELS["ark"][0])
    png = image_bytes("PNG", (30, 20))
    reply = await llm.ainvoke(_ask(_image(data_url(png), detail="low")))
    assert seen(png) in reply.content


@pytest.mark.parametrize("provider", URL_IMAGES)
def test_image_url_is_fetched_by_the_provider(emulators, image_host, provider):
    llm, emulator = _chat(emulators, provider, MODELS[provider][0])
    gif = image_bytes("GIF", (40, 40), "blue") if provider not in ("zhipu", "qianfan") else None
    picture = gif or image_bytes("JPEG", (40, 40), "blue")
    url = image_host.add(f"/{provider}/picture", picture, "image/gif" if gif else "image/jpeg")
    reply = llm.invoke(_ask({"type": "image", "url": url}))
    assert seen(picture, "gif" if gif else "jpeg") in reply.content
    assert emulator.requests[-1].body["messages"][0]["content"][1]["image_url"]["url"] == url


def test_kimi_refuses_image_urls_before_sending(emulators, image_host):
    llm, emulator = _chat(emulators, "moonshot", MODELS["moonshot"][0])
    with pytest.raises(BadRequestError, match="image URLs are not accepted"):
        llm.invoke(_ask(_image(image_host.add("/kimi.png", image_bytes()))))
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("provider", "model"),
    [(p, text) for p, (_, text) in sorted(MODELS.items()) if text] + sorted(TEXT_ONLY.items()),
)
def test_text_models_refuse_images_before_sending(emulators, provider, model):
    llm, emulator = _chat(emulators, provider, model)
    with pytest.raises(BadRequestError) as caught:
        llm.invoke(_ask(_image(data_url(image_bytes()))))
    assert caught.value.status_code == 400
    assert model in str(caught.value) or provider in str(caught.value)
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("provider", "picture", "message"),
    [
        ("zhipu", image_bytes("PNG") + b"\0" * (5 * 1024 * 1024), "the limit is 5242880 bytes"),
        ("zhipu", image_bytes("PNG", (6001, 20)), "sides may be at most 6000 pixels"),
        ("zhipu", image_bytes("GIF"), "gif images are not accepted"),
        ("ark", image_bytes("PNG", (14, 100)), "both sides must exceed 14 pixels"),
        ("openai_compatible", image_bytes("BMP"), "bmp images are not accepted"),
        ("qianfan", image_bytes("WEBP"), "webp images are not accepted"),
    ],
)
def test_documented_limits_are_enforced_before_sending(emulators, provider, picture, message):
    llm, emulator = _chat(emulators, provider, MODELS[provider][0])
    with pytest.raises(BadRequestError, match=message):
        llm.invoke(_ask(_image(data_url(picture))))
    assert emulator.requests == []


# -- the emulators themselves, driven by official SDKs ------------------------------------------
def test_zhipu_emulator_takes_what_the_official_sdk_sends(emulators):
    emulator = emulators["zhipu"]
    emulator.reset()
    client = ZhipuAI(api_key=emulator.api_key, base_url=emulator.base_url)
    png = image_bytes()
    content = [{"type": "text", "text": "hi"}, _image(data_url(png))]
    reply = client.chat.completions.create(
        model="glm-4v-plus", messages=[{"role": "user", "content": content}]
    )
    assert seen(png) in reply.choices[0].message.content
    assert emulator.requests[-1].body["messages"][0]["content"][1]["image_url"]["url"] == b64(png)


def test_zhipu_emulator_refuses_a_data_url_prefix_and_text_models(emulators):
    emulator = emulators["zhipu"]
    content = [{"type": "text", "text": "hi"}, _image(data_url(image_bytes()))]
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    url = f"{emulator.base_url}/chat/completions"
    answer = httpx.post(
        url,
        headers=headers,
        json={"model": "glm-4v-plus", "messages": [{"role": "user", "content": content}]},
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "1210"
    content[1] = _image(b64(image_bytes()))
    answer = httpx.post(
        url,
        headers=headers,
        json={"model": "glm-4-flash", "messages": [{"role": "user", "content": content}]},
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "1210"


@pytest.fixture
def openai_client(emulators) -> openai.OpenAI:
    emulator = emulators["openai_compatible"]
    emulator.reset()
    return openai.OpenAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)


@pytest.mark.parametrize(
    ("messages", "code", "text"),
    [
        ([_image(data_url(image_bytes("BMP")))], "invalid_image_format", "unsupported image"),
        ([_image(data_url(image_bytes())[:-40])], "invalid_image_format", "valid image"),
        ([_image("http://127.0.0.1:9/missing.png")], "invalid_image_url", "downloading"),
    ],
)
def test_openai_emulator_refuses_bad_images_as_openai_does(openai_client, messages, code, text):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": messages}]
        )
    assert caught.value.code == code and text in caught.value.message


def test_openai_emulator_allows_images_only_in_user_turns(openai_client):
    with pytest.raises(openai.BadRequestError, match="only allowed for messages with role 'user'"):
        openai_client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [_image(data_url(image_bytes()))]},
            ],
        )


def test_merged_turns_keep_their_images(emulators):
    """ERNIE needs alternating turns, so back-to-back user turns merge — images included."""
    llm, emulator = _chat(emulators, "qianfan", MODELS["qianfan"][0])
    png = image_bytes()
    reply = llm.invoke([HumanMessage("first"), *_ask(_image(data_url(png)))])
    assert seen(png) in reply.content
    (message,) = emulator.requests[-1].body["messages"]
    assert message["content"] == [
        {"type": "text", "text": "first"},
        {"type": "text", "text": "\n\n"},
        {"type": "text", "text": "What is in the picture?"},
        _image(data_url(png)),
    ]


def test_audio_reaches_audio_models_intact(emulators):
    import hashlib

    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40))
    block = {"type": "audio", "base64": b64(wav), "mime_type": "audio/wav"}
    llm, emulator = _chat(emulators, "openai_compatible", "gpt-4o-audio-preview")
    reply = llm.invoke(_ask(block))
    digest = hashlib.sha256(wav).hexdigest()[:12]
    assert f"I see 1 input(s): wav audio {len(wav)} bytes sha256:{digest}." in reply.content
    assert reply.usage_metadata["input_token_details"] == {"audio": 1}  # unreadable header: 1
    assert emulator.requests[-1].body["messages"][0]["content"][1] == {
        "type": "input_audio",
        "input_audio": {"data": b64(wav), "format": "wav"},
    }
    text_model, emulator = _chat(emulators, "azure", "gpt-4o")
    with pytest.raises(BadRequestError, match="does not accept audio input"):
        text_model.invoke(_ask(block))
    assert emulator.requests == []


def test_openai_sdk_sees_audio_tokens_in_prompt_details(emulators):
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(16000)
        sound.writeframes(bytes(2 * 16000 * 3))  # 3 seconds
    emulator = emulators["openai_compatible"]
    client = openai.OpenAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    audio = {
        "type": "input_audio",
        "input_audio": {"data": b64(buffer.getvalue()), "format": "wav"},
    }
    reply = client.chat.completions.create(
        model="gpt-4o-audio-preview",
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, audio]}],
    )
    # CompletionUsage.prompt_tokens_details.audio_tokens (emulated at 10 tokens per second)
    assert reply.usage.prompt_tokens_details.audio_tokens == 30
    assert reply.usage.prompt_tokens > 30
    plain = client.chat.completions.create(
        model="gpt-4o-audio-preview", messages=[{"role": "user", "content": "hi"}]
    )
    assert plain.usage.prompt_tokens_details is None
