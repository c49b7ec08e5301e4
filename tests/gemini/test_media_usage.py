"""Media tokens from Gemini: the emulator reports `usageMetadata.promptTokensDetails` per
modality as the API documents it (checked with the official SDK), and ChatGemini carries the
image, video and audio counts into `usage_metadata["input_token_details"]`."""

from __future__ import annotations

import base64
import io

import pytest
from google import genai
from google.genai import types
from langchain_core.messages import HumanMessage
from PIL import Image

from langchain_chatchat import ChatGemini
from tests.vision.videos import mp4_bytes, seen_video, video_data_url, wav_bytes


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "blue").save(buffer, "PNG")
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def client(emulator) -> genai.Client:
    return genai.Client(
        api_key=emulator.api_key, http_options=types.HttpOptions(base_url=emulator.base_url)
    )


def test_sdk_sees_prompt_tokens_by_modality(client):
    small, large = _png((300, 200)), _png((1000, 400))
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents=[
            types.Part(text="Compare these"),
            types.Part(inline_data=types.Blob(mime_type="image/png", data=small)),
            types.Part(inline_data=types.Blob(mime_type="image/png", data=large)),
        ],
    )
    usage = response.usage_metadata
    details = {d.modality.value: d.token_count for d in usage.prompt_tokens_details}
    # "Multimodal tokens": <=384 px both sides is 258; larger images are 768 px tiles of 258
    assert details["IMAGE"] == 258 + 2 * 258
    assert details["TEXT"] > 0 and usage.prompt_token_count == details["TEXT"] + 774
    assert "I see 2 image(s): png 300x200" in response.text


def test_text_only_prompt_has_only_text_details(client):
    usage = client.models.generate_content(model="gemini-2.5-flash", contents="hi").usage_metadata
    assert [d.modality.value for d in usage.prompt_tokens_details] == ["TEXT"]


def test_undecodable_media_is_refused(client):
    from google.genai import errors

    for mime, what in (("image/png", "image"), ("video/mp4", "video")):
        with pytest.raises(errors.APIError) as caught:
            client.models.generate_content(
                model="gemini-2.5-flash",
                contents=[types.Part(inline_data=types.Blob(mime_type=mime, data=b"nope"))],
            )
        assert caught.value.code == 400 and f"Unable to process input {what}" in str(caught.value)


def _ask(llm: ChatGemini, *parts: dict, stream: bool = False):
    message = [HumanMessage(content=[{"type": "text", "text": "What is this?"}, *parts])]
    if not stream:
        return llm.invoke(message)
    chunks = list(llm.stream(message))
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    return total


@pytest.mark.parametrize("stream", [False, True])
def test_chat_gemini_reports_image_video_and_audio_tokens(llm, stream):
    image = {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{_b64(_png((1000, 400)))}"},
    }
    video_file = mp4_bytes(seconds=3)
    video = {"type": "video_url", "video_url": {"url": video_data_url(video_file)}}
    audio = {"type": "input_audio", "input_audio": {"data": _b64(wav_bytes(2)), "format": "wav"}}
    reply = _ask(llm, image, video, audio, stream=stream)
    details = reply.usage_metadata["input_token_details"]
    # 2 tiles of 258; 263 tokens per second of video; 32 per second of audio
    assert details == {"image": 516, "video": 3 * 263, "audio": 2 * 32}
    assert reply.usage_metadata["input_tokens"] > 516 + 789 + 64
    assert seen_video(video_file) in reply.content


def test_text_only_reply_has_no_media_details(llm):
    reply = llm.invoke("hello")
    assert "input_token_details" not in reply.usage_metadata


def test_gemini_3_counts_an_image_at_its_default_media_resolution(emulator):
    llm = ChatGemini(
        model="gemini-3-pro-preview",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_retries=0,
    )
    image = {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{_b64(_png((64, 64)))}"},
    }
    reply = _ask(llm, image)
    assert reply.usage_metadata["input_token_details"]["image"] == 1120


# -- images in tool results: multimodal function responses (Gemini 3 only) ---------------------
def _tool_turns(image: dict) -> list:
    from langchain_core.messages import AIMessage, ToolMessage

    return [
        HumanMessage("show me the chart"),
        AIMessage("", tool_calls=[{"id": "c1", "name": "chart", "args": {}}]),
        ToolMessage(content=[{"type": "text", "text": "the chart"}, image], tool_call_id="c1"),
    ]


def _gemini(emulator, model: str) -> ChatGemini:
    return ChatGemini(
        model=model, api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0
    )


def test_gemini_3_takes_images_in_tool_results(emulator):
    png = _png((40, 30))
    block = {"type": "image", "base64": _b64(png), "mime_type": "image/png"}
    reply = _gemini(emulator, "gemini-3-flash-preview").invoke(_tool_turns(block))
    response = emulator.requests[-1].body["contents"][-1]["parts"][0]["functionResponse"]
    assert response["name"] == "chart" and response["response"] == {"result": "the chart"}
    (media,) = response["parts"]
    blob = media["inline_data"]  # the SDK's proto-JSON spelling, url-safe base64 bytes
    assert blob["mime_type"] == "image/png" and base64.urlsafe_b64decode(blob["data"]) == png
    assert reply.content.startswith("I see 1 image(s): png 40x30")
    assert reply.usage_metadata["input_token_details"]["image"] == 1120


@pytest.mark.parametrize(
    ("model", "block", "message"),
    [
        (
            "gemini-2.5-flash",
            {"type": "image", "base64": _b64(_png((8, 8))), "mime_type": "image/png"},
            "does not accept images in tool results for this model",
        ),
        (
            "gemini-3-flash-preview",
            {"type": "image", "url": "https://cdn.example.com/chart.png"},
            "inline only",
        ),
        (
            "gemini-3-flash-preview",
            {"type": "image_url", "image_url": {"url": "data:image/heic;base64,AAAAGGZ0eXBoZWlj"}},
            "not image/heic",
        ),
    ],
)
def test_tool_images_refused_before_sending(emulator, model, block, message):
    from langchain_chatchat.workers.errors import BadRequestError

    with pytest.raises(BadRequestError, match=message):
        _gemini(emulator, model).invoke(_tool_turns(block))
    assert emulator.requests == []


def _function_response_turns(media: types.FunctionResponsePart) -> list[types.Content]:
    call = types.Part(
        function_call=types.FunctionCall(name="chart", args={}),
        # the documented skip-validation sentinel, a base64 string on the wire
        thought_signature=base64.urlsafe_b64decode("skip_thought_signature_validator"),
    )
    answer = types.Part(
        function_response=types.FunctionResponse(
            name="chart", response={"result": "ok"}, parts=[media]
        )
    )
    return [
        types.Content(role="user", parts=[types.Part(text="chart?")]),
        types.Content(role="model", parts=[call]),
        types.Content(role="user", parts=[answer]),
    ]


def test_sdk_multimodal_function_responses(client):
    from google.genai import errors

    png = types.FunctionResponsePart(
        inline_data=types.FunctionResponseBlob(mime_type="image/png", data=_png((20, 10)))
    )
    answer = client.models.generate_content(
        model="gemini-3-pro-preview", contents=_function_response_turns(png)
    )
    assert "png 20x10" in answer.text
    with pytest.raises(errors.APIError) as caught:
        client.models.generate_content(
            model="gemini-2.5-flash", contents=_function_response_turns(png)
        )
    assert caught.value.code == 400
    assert "Multimodal function responses are not supported" in str(caught.value)
    remote = types.FunctionResponsePart(
        file_data=types.FunctionResponseFileData(
            file_uri="https://cdn.example.com/a.png", mime_type="image/png"
        )
    )
    with pytest.raises(errors.APIError, match="only inline_data"):
        client.models.generate_content(
            model="gemini-3-pro-preview", contents=_function_response_turns(remote)
        )
    gif = types.FunctionResponsePart(
        inline_data=types.FunctionResponseBlob(mime_type="image/gif", data=b"GIF89a")
    )
    with pytest.raises(errors.APIError, match="Unsupported MIME type: image/gif"):
        client.models.generate_content(
            model="gemini-3-pro-preview", contents=_function_response_turns(gif)
        )
