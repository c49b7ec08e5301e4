"""workers/content.py: sniffing, limits and wire forms, checked before any network call."""

from __future__ import annotations

import pytest

from langchain_chatchat.workers.content import MediaRules, pattern, prepare_media, sniff_image
from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.types import ChatRequest, WorkerMessage

from .conftest import b64, data_url, image_bytes


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
@pytest.mark.parametrize("size", [(64, 48), (17, 300), (1000, 11)])
def test_sniff_reads_format_and_pixels_like_pillow(fmt, size):
    info = sniff_image(image_bytes(fmt, size))
    assert info is not None
    assert (info.format, info.width, info.height) == (fmt.lower(), *size)


def test_sniff_knows_tiff_and_refuses_non_images():
    assert sniff_image(image_bytes("TIFF")).format == "tiff"
    assert sniff_image(b"%PDF-1.7 ...") is None
    assert sniff_image(b"") is None


def _request(url: str, model: str = "vision-1", role: str = "user", **image) -> ChatRequest:
    part = {"type": "image_url", "image_url": {"url": url, **image}}
    message = WorkerMessage(role, [{"type": "text", "text": "what is it?"}, part])
    if role == "tool":
        message.tool_call_id = "call_1"
    return ChatRequest(model=model, messages=[message])


def _image_url(request: ChatRequest) -> dict:
    return request.messages[0].content[1]["image_url"]


RULES = MediaRules(
    models=pattern(r"vision"), max_image_bytes=4096, min_side=10, max_side=500, example="vision-1"
)


def test_data_url_is_normalised_to_the_sniffed_type(png):
    prepared = prepare_media(_request(data_url(png, "image/jpeg"), detail="low"), RULES, "p")
    assert _image_url(prepared) == {"url": data_url(png, "image/png"), "detail": "low"}


def test_bare_base64_wire_form_and_detail_dropped(png):
    rules = MediaRules(inline="base64", detail=False)
    prepared = prepare_media(_request(data_url(png), detail="high"), rules, "zhipu")
    assert _image_url(prepared) == {"url": b64(png)}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:image/png;base64,not*base64", "not valid base64"),
        ("data:image/png,rawbytes", "data URL must look like"),
        (data_url(b"hello, world"), "not a recognised image"),
        (data_url(b"%PDF-1.4 hello"), "not a recognised image"),
        (data_url(image_bytes("PNG", (9, 40))), "must exceed 10 pixels"),
        (data_url(image_bytes("PNG", (600, 40))), "at most 500 pixels"),
        ("ftp://example.com/a.png", "unsupported image URL scheme"),
    ],
)
def test_bad_images_are_typed_400s_naming_the_model(url, message):
    with pytest.raises(BadRequestError, match=message) as caught:
        prepare_media(_request(url), RULES, "prov")
    assert "prov model 'vision-1'" in str(caught.value)
    assert caught.value.status_code == 400


def test_size_and_format_limits():
    big = image_bytes("PNG", (300, 300), "blue") + b"\0" * 5000
    with pytest.raises(BadRequestError, match="the limit is 4096 bytes"):
        prepare_media(_request(data_url(big)), RULES, "p")
    rules = MediaRules(formats=frozenset({"png", "jpeg"}))
    with pytest.raises(BadRequestError, match=r"gif images are not accepted \(supported: jpeg"):
        prepare_media(_request(data_url(image_bytes("GIF"), "image/gif")), rules, "p")


def test_text_model_refused_with_a_suggestion(png):
    with pytest.raises(BadRequestError, match="does not accept image input; use a vision model"):
        prepare_media(_request(data_url(png), model="text-1"), RULES, "p")
    assert prepare_media(_request(data_url(png), model="text-1"), RULES, "p", vision=True)


def test_remote_urls_pass_untouched_unless_refused():
    url = "https://cdn.example.com/cat.png"
    assert _image_url(prepare_media(_request(url), RULES, "p")) == {"url": url}
    with pytest.raises(BadRequestError, match="send the image inline"):
        prepare_media(_request(url), MediaRules(remote_urls=False), "p")


def test_images_only_in_user_turns_and_tool_results_where_allowed(png):
    with pytest.raises(BadRequestError, match="does not accept images in tool results"):
        prepare_media(_request(data_url(png), role="tool"), MediaRules(), "p")
    allowed = MediaRules(tool_images=True)
    assert prepare_media(_request(data_url(png), role="tool"), allowed, "p")
    with pytest.raises(BadRequestError, match="user messages only, not assistant"):
        prepare_media(_request(data_url(png), role="assistant"), allowed, "p")


def test_max_images_per_request(png):
    rules = MediaRules(max_images=1)
    request = _request(data_url(png))
    request.messages[0].content.append(request.messages[0].content[1])
    with pytest.raises(BadRequestError, match="at most 1 image"):
        prepare_media(request, rules, "p")


def test_file_urls_only_inside_the_allowed_directory(tmp_path, png):
    inside = tmp_path / "media" / "cat.png"
    inside.parent.mkdir()
    inside.write_bytes(png)
    secret = tmp_path / "secret.png"
    secret.write_bytes(png)
    with pytest.raises(BadRequestError, match="file:// images are not enabled"):
        prepare_media(_request(inside.as_uri()), MediaRules(), "p")
    local = str(inside.parent)
    prepared = prepare_media(_request(inside.as_uri()), MediaRules(), "p", local_dir=local)
    assert _image_url(prepared)["url"] == data_url(png)
    for escape in (secret.as_uri(), f"file://{inside.parent}/../secret.png"):
        with pytest.raises(BadRequestError, match="not a file inside the allowed directory"):
            prepare_media(_request(escape), MediaRules(), "p", local_dir=local)


def test_video_and_audio_follow_their_model_rules(png):
    rules = MediaRules(video_models=pattern("vid"), audio_models=pattern("aud"))
    video = WorkerMessage("user", [{"type": "video", "video": "https://x/v.mp4"}])
    prepared = prepare_media(ChatRequest(model="vid-1", messages=[video]), rules, "p")
    assert prepared.messages[0].content == [
        {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}
    ]
    with pytest.raises(BadRequestError, match="does not accept video input"):
        prepare_media(ChatRequest(model="aud-1", messages=[video]), rules, "p")
    frames = WorkerMessage("user", [{"type": "video", "video": [data_url(png)] * 4}])
    with pytest.raises(BadRequestError, match="list of frame images is not accepted"):
        prepare_media(ChatRequest(model="vid-1", messages=[frames]), rules, "p")
    audio = WorkerMessage(
        "user", [{"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}]
    )
    assert prepare_media(ChatRequest(model="aud-1", messages=[audio]), rules, "p")
    with pytest.raises(BadRequestError, match="does not accept audio input"):
        prepare_media(ChatRequest(model="vid-1", messages=[audio]), rules, "p")
