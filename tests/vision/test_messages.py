"""Every LangChain content form becomes the neutral OpenAI-style parts workers take."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_chatchat.chat_models.messages import to_worker_messages
from langchain_chatchat.workers.errors import BadRequestError

URL = "https://cdn.example.com/cat.png"
TEXT = {"type": "text", "text": "what is it?"}


def _parts(*blocks) -> list:
    return to_worker_messages([HumanMessage(content=[TEXT, *blocks])])[0].content


@pytest.mark.parametrize(
    ("block", "image_url"),
    [
        ({"type": "image_url", "image_url": URL}, {"url": URL}),
        (
            {"type": "image_url", "image_url": {"url": URL, "detail": "high"}},
            {"url": URL, "detail": "high"},
        ),
        ({"type": "image", "url": URL}, {"url": URL}),
        ({"type": "image", "id": "lc_block_1", "url": URL}, {"url": URL}),
        (
            {"type": "image", "base64": "iVBO", "mime_type": "image/png"},
            {"url": "data:image/png;base64,iVBO"},
        ),
        (
            {"type": "image", "source_type": "base64", "data": "iVBO", "mime_type": "image/png"},
            {"url": "data:image/png;base64,iVBO"},
        ),
        ({"type": "image", "source_type": "url", "url": URL}, {"url": URL}),
        (
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/gif", "data": "R0"},
            },
            {"url": "data:image/gif;base64,R0"},
        ),
        (
            {"type": "image", "url": URL, "extras": {"detail": "low"}},
            {"url": URL, "detail": "low"},
        ),
    ],
)
def test_image_forms(block, image_url):
    assert _parts(block) == [TEXT, {"type": "image_url", "image_url": image_url}]


def test_audio_and_video_forms():
    assert _parts({"type": "audio", "base64": "UklG", "mime_type": "audio/wav"})[1] == {
        "type": "input_audio",
        "input_audio": {"data": "UklG", "format": "wav"},
    }
    assert _parts({"type": "input_audio", "input_audio": {"data": "AA", "format": "mp3"}})[1] == {
        "type": "input_audio",
        "input_audio": {"data": "AA", "format": "mp3"},
    }
    frames = ["https://x/1.jpg", "https://x/2.jpg"]
    assert _parts({"type": "video", "video": frames})[1] == {"type": "video", "video": frames}
    assert _parts({"type": "video_url", "video_url": {"url": "https://x/v.mp4"}})[1] == {
        "type": "video",
        "video": "https://x/v.mp4",
    }
    assert _parts({"type": "video", "url": "https://x/v.mp4"})[1]["video"] == "https://x/v.mp4"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"type": "image", "file_id": "file-123"}, "uploaded file id"),
        ({"type": "image", "source_type": "id", "id": "file-1"}, "uploaded file id"),
        ({"type": "file", "base64": "JVBE", "mime_type": "application/pdf"}, "PDF"),
        ({"type": "image"}, "needs a url or base64"),
        ({"type": "hologram"}, "unsupported content block type 'hologram'"),
    ],
)
def test_unsupported_blocks_are_clear_errors(block, message):
    with pytest.raises(BadRequestError, match=message):
        _parts(block)


def test_text_only_lists_stay_strings_and_tool_images_stay_parts():
    system, user = to_worker_messages(
        [SystemMessage(content=[TEXT]), HumanMessage(content=["a", {"type": "text", "text": "b"}])]
    )
    assert (system.content, user.content) == ("what is it?", "ab")
    image = {"type": "image", "base64": "iVBO", "mime_type": "image/png"}
    ai = AIMessage("", tool_calls=[{"id": "c1", "name": "snap", "args": {}}])
    tool = to_worker_messages([ai, ToolMessage(content=[image], tool_call_id="c1")])[1]
    assert tool.content == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}
    ]
    text_tool = to_worker_messages([ToolMessage(content=[TEXT], tool_call_id="c1")])[0]
    assert text_tool.content == "what is it?"


def test_media_tokens_from_provider_usage_shapes():
    from langchain_chatchat.chat_models.messages import usage_metadata
    from langchain_chatchat.server.openai.messages import usage
    from langchain_chatchat.workers.openai_compatible import parse_usage

    # an OpenAI-style body with per-modality prompt details (zeros are not reported)
    raw = {
        "prompt_tokens": 900,
        "completion_tokens": 10,
        "prompt_tokens_details": {
            "cached_tokens": 0,
            "image_tokens": 800,
            "audio_tokens": 0,
            "video_tokens": True,
        },
    }
    parsed = parse_usage(raw)
    assert parsed is not None
    assert (parsed.image_tokens, parsed.audio_tokens, parsed.video_tokens) == (800, None, None)
    metadata = usage_metadata(parsed)
    assert metadata["input_token_details"] == {"cache_read": 0, "image": 800}
    assert usage(metadata)["prompt_tokens_details"] == {"cached_tokens": 0, "image_tokens": 800}
    plain = usage_metadata(parse_usage({"prompt_tokens": 5, "completion_tokens": 1}))
    assert "input_token_details" not in plain and "prompt_tokens_details" not in usage(plain)
