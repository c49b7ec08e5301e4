"""Video files (not frames) through the providers that document them: each emulator sniffs the
container from the bytes it receives, enforces the provider's size, format and form rules, and
names the video (container, byte size, hash) so a test passes only if the bytes arrived intact."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from dashscope import MultiModalConversation
from langchain_core.messages import HumanMessage
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkBadRequestError
from zhipuai import ZhipuAI

from langchain_chatchat.testing.openai_compatible import OpenAICompatibleEmulator
from langchain_chatchat.workers.errors import BadRequestError
from tests.providers.support import SPECS, connection

from .videos import avi_bytes, mp4_bytes, seen_video, video_data_url, webm_bytes

MODELS = {"zhipu": "glm-4v-plus", "ark": "doubao-seed-1-6-250615", "moonshot": "kimi-k2.5"}


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, OpenAICompatibleEmulator]]:
    running = {name: OpenAICompatibleEmulator(name).start() for name in [*MODELS, "azure"]}
    yield running
    for emulator in running.values():
        emulator.stop()


def _chat(emulators, provider: str, model: str | None = None):
    emulator = emulators[provider]
    emulator.reset()
    llm = SPECS[provider].chat(
        model=model or MODELS[provider], **connection(emulator, max_retries=0)
    )
    return llm, emulator


def _ask(url: str) -> list[HumanMessage]:
    return [
        HumanMessage(
            content=[{"type": "text", "text": "What happens?"}, {"type": "video", "url": url}]
        )
    ]


def _wire_video(emulator) -> dict:
    return emulator.requests[-1].body["messages"][0]["content"][1]


# -- accepted: the reply proves the bytes arrived ------------------------------------------------
def test_zhipu_video_by_url(emulators, image_host):
    llm, emulator = _chat(emulators, "zhipu")
    clip = mp4_bytes(seconds=4, payload=b"zhipu" * 50)
    url = image_host.add("/video/zhipu.mp4", clip, "video/mp4")
    reply = llm.invoke(_ask(url))
    assert reply.content.startswith(f"I see 1 input(s): {seen_video(clip)}.")
    assert _wire_video(emulator) == {"type": "video_url", "video_url": {"url": url}}


@pytest.mark.parametrize(
    ("data", "mime", "container"),
    [
        (mp4_bytes(seconds=2), "video/mp4", "mp4"),
        (mp4_bytes(brand=b"qt  "), "video/quicktime", "mov"),
        (avi_bytes(), "video/x-msvideo", "avi"),
    ],
)
def test_ark_video_inline_and_by_url(emulators, image_host, data, mime, container):
    llm, emulator = _chat(emulators, "ark")
    reply = llm.invoke(_ask(video_data_url(data, mime)))
    assert seen_video(data, container) in reply.content
    url = image_host.add(f"/video/ark.{container}", data, mime)
    assert seen_video(data, container) in llm.invoke(_ask(url)).content
    assert _wire_video(emulator)["video_url"]["url"] == url


def test_moonshot_video_inline(emulators):
    llm, _ = _chat(emulators, "moonshot")
    clip = webm_bytes(b"kimi" * 30)
    streamed = "".join(c.content for c in llm.stream(_ask(video_data_url(clip, "video/webm"))))
    assert streamed.startswith(f"I see 1 input(s): {seen_video(clip, 'webm')}.")


# -- refused, with the provider's error, through the official SDKs -----------------------------
def _video_message(url: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "?"},
                {"type": "video_url", "video_url": {"url": url}},
            ],
        }
    ]


def test_zhipu_sdk_refusals(emulators, image_host):
    emulator = emulators["zhipu"]
    client = ZhipuAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    webm = image_host.add("/video/zhipu.webm", webm_bytes(), "video/webm")
    long_clip = image_host.add("/video/long.mp4", mp4_bytes(seconds=31), "video/mp4")
    not_video = image_host.add("/video/fake.mp4", b"<html>not a video</html>", "video/mp4")
    cases = [
        ("glm-4v-plus", webm, "webm"),  # mp4 only
        ("glm-4v-plus", long_clip, "31 s > 30 s"),  # at most 30 seconds
        ("glm-4v-plus", not_video, "not a video"),
        ("glm-4v-plus", video_data_url(mp4_bytes()), "URL"),  # by URL only
        ("glm-4v", image_host.add("/video/ok.mp4", mp4_bytes(), "video/mp4"), "glm-4v"),
    ]
    for model, url, message in cases:
        with pytest.raises(Exception) as caught:
            client.chat.completions.create(model=model, messages=_video_message(url))
        assert getattr(caught.value, "status_code", None) == 400
        body = caught.value.response.json()
        assert body["error"]["code"] == "1210" and message in body["error"]["message"]


def test_zhipu_size_limit(emulators):
    emulator = emulators["zhipu"]
    big = mp4_bytes(payload=bytes(20 * 1024 * 1024))
    emulator.remote_images["https://cdn.example.com/big.mp4"] = big
    client = ZhipuAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    with pytest.raises(Exception) as caught:
        client.chat.completions.create(
            model="glm-4v-plus", messages=_video_message("https://cdn.example.com/big.mp4")
        )
    assert "bytes > 20971520" in caught.value.response.json()["error"]["message"]


def test_ark_sdk_refusals(emulators):
    emulator = emulators["ark"]
    client = Ark(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    cases = [
        ("doubao-seed-1-6-250615", video_data_url(webm_bytes(), "video/webm"), "webm"),
        ("doubao-seed-1-6-250615", video_data_url(b"\x00" * 64), "not a video"),
        ("doubao-1-5-vision-pro-32k-250115", video_data_url(mp4_bytes()), "doubao-1-5-vision"),
    ]
    for model, url, message in cases:
        with pytest.raises(ArkBadRequestError) as caught:
            client.chat.completions.create(model=model, messages=_video_message(url))
        error = caught.value.body
        assert error["code"] == "InvalidParameter" and message in error["message"]


def test_moonshot_and_openai_refusals(emulators, image_host):
    moonshot = emulators["moonshot"]
    kimi = openai.OpenAI(api_key=moonshot.api_key, base_url=moonshot.base_url, max_retries=0)
    url = image_host.add("/video/kimi.mp4", mp4_bytes(), "video/mp4")
    with pytest.raises(openai.BadRequestError, match="unsupported video url"):
        kimi.chat.completions.create(model="kimi-k2.5", messages=_video_message(url))
    with pytest.raises(openai.BadRequestError, match="moonshot-v1-8k-vision-preview"):
        kimi.chat.completions.create(
            model="moonshot-v1-8k-vision-preview",
            messages=_video_message(video_data_url(mp4_bytes())),
        )
    azure = emulators["azure"]  # OpenAI documents no video input
    client = openai.AzureOpenAI(
        api_key=azure.api_key, azure_endpoint=azure.url, api_version="2024-10-21", max_retries=0
    )
    with pytest.raises(openai.BadRequestError, match="video_url"):
        client.chat.completions.create(
            model="gpt-4o", messages=_video_message(video_data_url(mp4_bytes()))
        )


# -- checked before sending by our workers ------------------------------------------------------
def test_workers_refuse_before_sending(emulators):
    llm, emulator = _chat(emulators, "zhipu")
    with pytest.raises(BadRequestError, match=r"http\(s\) video URL"):
        llm.invoke(_ask(video_data_url(mp4_bytes())))
    llm, emulator = _chat(emulators, "ark")
    with pytest.raises(BadRequestError, match="webm videos are not accepted"):
        llm.invoke(_ask(video_data_url(webm_bytes(), "video/webm")))
    with pytest.raises(BadRequestError, match="not a recognised video"):
        llm.invoke(_ask(video_data_url(b"\x00" * 64)))
    assert emulator.requests == []


# -- DashScope's native endpoint, through the dashscope SDK ------------------------------------
def _sdk(emulator, content: list, model: str = "qwen-vl-max"):
    return MultiModalConversation.call(
        model=model,
        messages=[{"role": "user", "content": content}],
        api_key=emulator.api_key,
        base_address=emulator.base_url,
    )


def test_dashscope_video_file(dashscope_emulator, image_host):
    clip = mp4_bytes(seconds=3, payload=b"qwen" * 40)
    answer = _sdk(dashscope_emulator, [{"video": video_data_url(clip)}, {"text": "what?"}])
    assert answer.status_code == 200
    assert seen_video(clip) in answer.output.choices[0].message.content[0]["text"]
    # 3 s sampled at 2 frames per second, 4 tokens each, plus the vision start/end tokens
    assert answer.usage["video_tokens"] == 6 * 4 + 2
    assert answer.usage["input_tokens_details"]["video_tokens"] == 26
    url = image_host.add("/video/qwen.avi", avi_bytes(), "video/x-msvideo")
    answer = _sdk(dashscope_emulator, [{"video": url}])
    assert seen_video(avi_bytes(), "avi") in answer.output.choices[0].message.content[0]["text"]


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (video_data_url(webm_bytes(), "video/webm"), "illegal"),
        (video_data_url(b"garbage" * 10), "illegal"),
        ("https://127.0.0.1:9/clip.mp4", "Download"),
        ("ftp://example.com/clip.mp4", "illegal"),
    ],
)
def test_dashscope_video_refusals(dashscope_emulator, video, message):
    answer = _sdk(dashscope_emulator, [{"video": video}])
    assert answer.status_code == 400 and message in answer.message
