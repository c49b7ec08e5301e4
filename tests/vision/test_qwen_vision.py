"""Qwen vision on DashScope's multimodal endpoint: ChatQwen picks it by model, the emulator
speaks it (driven by the official SDK too) and names every image it decoded."""

from __future__ import annotations

import pytest
from dashscope import MultiModalConversation
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from langchain_chatchat import ChatQwen
from langchain_chatchat.workers.errors import BadRequestError

from .conftest import b64, data_url, image_bytes, seen
from .videos import mp4_bytes, seen_video

MULTIMODAL = "/api/v1/services/aigc/multimodal-generation/generation"


@pytest.fixture
def emulator(dashscope_emulator):
    return dashscope_emulator


def _qwen(emulator, model: str = "qwen-vl-max", **extra) -> ChatQwen:
    return ChatQwen(
        model=model, api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0, **extra
    )


def _ask(*parts: dict) -> list[HumanMessage]:
    return [HumanMessage(content=[{"type": "text", "text": "What is this?"}, *parts])]


def _image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def _content(emulator) -> list[dict]:
    assert emulator.requests[-1].path == MULTIMODAL
    return emulator.requests[-1].body["input"]["messages"][-1]["content"]


@pytest.mark.parametrize("model", ["qwen-vl-max", "qwen2.5-vl-72b-instruct", "qwen3-vl-plus"])
def test_vision_models_use_the_multimodal_endpoint(emulator, model):
    png = image_bytes("PNG", (56, 56))
    reply = _qwen(emulator, model).invoke(_ask(_image(data_url(png))))
    assert reply.content.startswith(f"I see 1 image(s): {seen(png)}.")
    assert _content(emulator) == [{"text": "What is this?"}, {"image": data_url(png)}]
    # 56x56 px is 2x2 tiles of 28 px: at least 4 tokens, plus the vision start/end tokens
    assert reply.usage_metadata["input_tokens"] == 4 + 4 + 2


@pytest.mark.parametrize("stream", [False, True])
def test_media_tokens_reach_usage_metadata(emulator, stream):
    def usage(llm: ChatQwen, *parts: dict) -> dict:
        if not stream:
            return llm.invoke(_ask(*parts)).usage_metadata
        chunks = [c for c in llm.stream(_ask(*parts)) if c.usage_metadata]
        assert len(chunks) == 1  # only the final chunk carries usage
        return chunks[0].usage_metadata

    llm = _qwen(emulator, "qwen2.5-vl-7b-instruct")
    image = usage(llm, _image(data_url(image_bytes("PNG", (56, 84)))))
    assert image["input_token_details"] == {"image": 2 * 3 + 2}
    frames = [data_url(image_bytes("PNG", (28, 28), color)) for color in ("red", "blue") * 2]
    video = usage(llm, {"type": "video", "video": frames})
    assert video["input_token_details"] == {"video": 4 * (4 + 2)}
    clip = usage(llm, {"type": "video", "url": data_url(mp4_bytes(seconds=5), "video/mp4")})
    assert clip["input_token_details"] == {"video": 10 * 4 + 2}
    assert "input_token_details" not in usage(llm, {"type": "text", "text": " plain"})


async def test_streaming_is_incremental_and_async(emulator):
    png = image_bytes("PNG", (40, 40))
    llm = _qwen(emulator)
    chunks = [chunk.content async for chunk in llm.astream(_ask(_image(data_url(png))))]
    assert len(chunks) > 3 and "".join(chunks).startswith(f"I see 1 image(s): {seen(png)}.")
    assert emulator.requests[-1].body["parameters"]["incremental_output"] is True
    sync_chunks = list(llm.stream(_ask(_image(data_url(png)))))
    assert "".join(c.content for c in sync_chunks) == "".join(chunks)
    assert sum(1 for c in sync_chunks if c.usage_metadata) == 1


def test_image_urls_and_video_frames(emulator, image_host):
    jpeg = image_bytes("JPEG", (80, 60), "yellow")
    url = image_host.add("/qwen/photo.jpg", jpeg, "image/jpeg")
    reply = _qwen(emulator).invoke(_ask({"type": "image", "url": url}))
    assert seen(jpeg, "jpeg") in reply.content
    frames = [image_bytes("PNG", (32, 32 + i)) for i in range(4)]
    video = {"type": "video", "video": [data_url(f) for f in frames]}
    reply = _qwen(emulator, "qwen2.5-vl-7b-instruct").invoke(_ask(video))
    assert reply.content.startswith("I see 4 image(s): " + "; ".join(seen(f) for f in frames))
    assert _content(emulator)[1] == {"video": [data_url(f) for f in frames]}
    clip = mp4_bytes(seconds=1.5)
    clip_url = image_host.add("/qwen/clip.mp4", clip, "video/mp4")
    reply = _qwen(emulator).invoke(_ask({"type": "video", "url": clip_url}))
    assert _content(emulator)[1] == {"video": clip_url}
    assert reply.content.startswith(f"I see 1 input(s): {seen_video(clip)}.")


def test_qvq_thinks_and_streams_even_for_invoke(emulator):
    png = image_bytes()
    reply = _qwen(emulator, "qvq-max").invoke(_ask(_image(data_url(png))))
    assert seen(png) in reply.content
    assert reply.additional_kwargs["reasoning_content"]
    assert reply.usage_metadata["output_token_details"]["reasoning"] > 0


def test_tools_with_a_vision_model(emulator):
    @tool
    def describe_color(color: str) -> str:
        """Describe a color."""
        return color

    llm = _qwen(emulator, "qwen3-vl-plus").bind_tools([describe_color])
    reply = llm.invoke(_ask(_image(data_url(image_bytes())), {"type": "text", "text": " color?"}))
    assert reply.tool_calls[0]["name"] == "describe_color"
    assert emulator.requests[-1].body["parameters"]["tools"][0]["function"]["name"] == (
        "describe_color"
    )


def test_local_files_only_from_the_operator_directory(emulator, tmp_path):
    png = image_bytes("PNG", (44, 33))
    (tmp_path / "cat.png").write_bytes(png)
    with pytest.raises(BadRequestError, match="file:// images are not enabled"):
        _qwen(emulator).invoke(_ask(_image((tmp_path / "cat.png").as_uri())))
    llm = _qwen(emulator, local_media_dir=str(tmp_path))
    assert seen(png) in llm.invoke(_ask(_image((tmp_path / "cat.png").as_uri()))).content
    assert _content(emulator)[1] == {"image": data_url(png)}
    with pytest.raises(BadRequestError, match="inside the allowed directory"):
        llm.invoke(_ask(_image("file:///etc/hostname")))


@pytest.mark.parametrize(
    ("model", "parts", "message"),
    [
        ("qwen-plus", [_image(data_url(image_bytes()))], "does not accept image input"),
        ("qwen-vl-max", [_image(data_url(image_bytes("PNG", (10, 50))))], "exceed 10 pixels"),
        ("qwen-vl-max", [_image(data_url(image_bytes("GIF")))], "gif images are not accepted"),
        (
            "qwen-vl-max",
            [_image(data_url(image_bytes() + b"\0" * (8 * 1024 * 1024)))],
            "the limit is 7864320 bytes",
        ),
    ],
)
def test_refused_before_sending(emulator, model, parts, message):
    with pytest.raises(BadRequestError, match=message):
        _qwen(emulator, model).invoke(_ask(*parts))
    assert emulator.requests == []


def test_multimodal_override_for_unlisted_vision_models(emulator):
    png = image_bytes()
    llm = _qwen(emulator, "qwen-vl-max", multimodal=False)
    with pytest.raises(BadRequestError, match="does not accept image input"):
        llm.invoke(_ask(_image(data_url(png))))
    text = _qwen(emulator, "qwen-vl-plus").invoke("just text")
    assert text.content == "Hello! You said: just text"
    assert emulator.requests[-1].body["input"]["messages"] == [
        {"role": "user", "content": [{"text": "just text"}]}
    ]


# -- the emulator, driven by the official SDK ----------------------------------------------------
def _sdk(emulator, model: str, content: list, **kwargs):
    return MultiModalConversation.call(
        model=model,
        messages=[{"role": "user", "content": content}],
        api_key=emulator.api_key,
        base_address=emulator.base_url,
        **kwargs,
    )


def test_sdk_round_trip_with_usage_image_tokens(emulator):
    png = image_bytes("PNG", (280, 140))
    answer = _sdk(emulator, "qwen-vl-plus", [{"image": data_url(png)}, {"text": "hi"}])
    assert answer.status_code == 200
    assert seen(png) in answer.output.choices[0].message.content[0]["text"]
    usage = answer.usage
    # the reference's multimodal usage: totals, top-level image_tokens, and the details
    assert usage["image_tokens"] == 10 * 5 + 2
    assert usage["input_tokens_details"] == {
        "text_tokens": usage["input_tokens"] - 52,
        "image_tokens": 52,
    }
    assert usage["output_tokens_details"] == {"text_tokens": usage["output_tokens"]}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    text_only = _sdk(emulator, "qwen-vl-plus", [{"text": "hi"}]).usage
    assert "image_tokens" not in text_only and "input_tokens_details" not in text_only
    chunks = list(
        _sdk(
            emulator,
            "qwen-vl-plus",
            [{"image": data_url(png)}],
            stream=True,
            incremental_output=True,
        )
    )
    text = "".join(part["text"] for c in chunks for part in c.output.choices[0].message.content)
    assert text.startswith(f"I see 1 image(s): {seen(png)}.")


@pytest.mark.parametrize(
    ("model", "content", "code", "message"),
    [
        ("qwen-plus", [{"text": "hi"}], "InvalidParameter", "url error"),
        ("qwen-vl-max", [{"image": b64(image_bytes())}], "InvalidParameter", "illegal"),
        ("qwen-vl-max", [{"image": data_url(image_bytes()[:60])}], "InvalidParameter", "illegal"),
        (
            "qwen-vl-max",
            [{"image": data_url(image_bytes("PNG", (8, 30)))}],
            "InvalidParameter",
            "width do not meet",
        ),
        (
            "qwen-vl-max",
            [{"image": data_url(image_bytes("PNG", (500, 2)))}],
            "InvalidParameter",
            "width do not meet",
        ),
        (
            "qwen-vl-max",
            [{"image": "data:image/png;base64," + "A" * 10_485_760}],
            "InvalidParameter",
            "Exceeded limit on max bytes per data-uri item : 10485760",
        ),
        (
            "qwen-vl-max",
            [{"video": [data_url(image_bytes())] * 3}],
            "InvalidParameter",
            "between 4 and 512",
        ),
        (
            "qwen-vl-max",
            [{"image": "https://127.0.0.1:9/x.png"}],
            "InvalidParameter.DataInspection",
            "Download",
        ),
    ],
)
def test_sdk_sees_documented_errors(emulator, model, content, code, message):
    answer = _sdk(emulator, model, content)
    assert answer.status_code == 400
    assert answer.code == code and message in answer.message


def test_text_generation_refuses_vision_models(emulator):
    from dashscope import Generation

    answer = Generation.call(
        model="qwen-vl-max",
        messages=[{"role": "user", "content": "hi"}],
        api_key=emulator.api_key,
        base_address=emulator.base_url,
        result_format="message",
    )
    assert answer.status_code == 400 and "url error" in answer.message
