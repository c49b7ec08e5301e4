"""Media parts (images, video, audio) of a request: parsed, checked and put in wire form.

Every worker that takes media runs `prepare_media` before any network call, so an image a
provider or model would refuse is a typed `BadRequestError` naming the model — never a provider
400, a silent drop, or a large upload that was bound to fail. What each provider accepts is a
`MediaRules` value declared next to its worker.

Images arrive as OpenAI-style parts (`{"type": "image_url", "image_url": {"url", "detail"?}}`);
the URL is a `data:` URL, an `http(s)` URL (the provider fetches it; the gateway never does), or
a `file://` path, read only from a directory the operator allowed. Inline bytes are checked here:
format (sniffed from the bytes, not the declared type), size, and pixel dimensions.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.types import ChatRequest, WorkerMessage

MIB = 1024 * 1024


@dataclass(frozen=True)
class ImageInfo:
    """What the bytes of an image say about themselves."""

    format: str  # "png", "jpeg", "gif", "webp", "bmp", "tiff", "heic"
    width: int | None
    height: int | None
    size: int

    @property
    def mime(self) -> str:
        return f"image/{self.format}"


def sniff_image(data: bytes) -> ImageInfo | None:
    """The format and pixel size of an encoded image from its header; None if not an image."""
    size = len(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return ImageInfo("png", width, height, size)
    if data.startswith(b"\xff\xd8"):
        width, height = _jpeg_size(data)
        return ImageInfo("jpeg", width, height, size)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return ImageInfo("gif", width, height, size)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        width, height = _webp_size(data)
        return ImageInfo("webp", width, height, size)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return ImageInfo("bmp", abs(width), abs(height), size)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ImageInfo("tiff", None, None, size)
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heif"):
        return ImageInfo("heic", None, None, size)
    return None


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    """Walk the JPEG segments to the first start-of-frame marker."""
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            return None, None
        marker = data[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None, None


def _webp_size(data: bytes) -> tuple[int | None, int | None]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None, None


_HEIF_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"heif", b"avif")


def sniff_video(data: bytes) -> str | None:
    """The container of a video file from its header; None if it is not a video. ISO-BMFF
    `ftyp` brands give MP4 / MOV (`qt  `) / 3GP, the EBML DocType WebM or MKV."""
    if data[4:8] == b"ftyp" and len(data) >= 12:
        brand = data[8:12]
        if brand in _HEIF_BRANDS:
            return None
        return "mov" if brand == b"qt  " else "3gp" if brand.startswith(b"3g") else "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in data[:64] else "mkv"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    if data[:3] == b"FLV":
        return "flv"
    if data[:4] == b"\x30\x26\xb2\x75":  # the ASF header object's GUID
        return "wmv"
    if data[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg"
    return None


@dataclass(frozen=True)
class MediaRules:
    """What one provider accepts as media, and in which wire form.

    - models: names of the models that take images (a regex searched in the model name);
      None means every model does. `text_models` names models known to take text only.
    - formats / max_image_bytes / min_side / max_side / max_pixels / max_images: the
      documented limits, checked on inline images (a URL's bytes are the provider's to check).
    - remote_urls: whether http(s) image URLs may be sent for the provider to fetch.
    - inline: how inline images go on the wire — a data URL, or the bare base64 (Zhipu).
    - detail: whether the provider takes OpenAI's `image_url.detail` (dropped otherwise).
    - tool_images: whether tool results may carry images (True / False, or the models that
      document it as a pattern).
    - video_models / audio_models: models that take video / audio; `video_frames`: whether a
      video may be a list of frame images (DashScope) besides a video URL.
    - video_formats / max_video_bytes / video_inline: the containers and size checked on an
      inline (data URL) video, and whether inline video is accepted at all (else URL only).
    - example: a model to suggest when a text-only model is sent an image.
    """

    models: re.Pattern[str] | None = None
    text_models: re.Pattern[str] | None = None
    formats: frozenset[str] = frozenset({"png", "jpeg", "gif", "webp"})
    max_image_bytes: int = 20 * MIB
    min_side: int | None = None
    max_side: int | None = None
    max_pixels: int | None = None
    max_images: int | None = None
    remote_urls: bool = True
    inline: Literal["data_url", "base64"] = "data_url"
    detail: bool = True
    tool_images: bool | re.Pattern[str] = False
    video_models: re.Pattern[str] | None = None
    audio_models: re.Pattern[str] | None = None
    video_frames: bool = False
    video_formats: frozenset[str] = frozenset({"mp4"})
    max_video_bytes: int = 20 * MIB
    video_inline: bool = True
    example: str | None = None

    def takes_images(self, model: str) -> bool:
        if self.models is not None:
            return bool(self.models.search(model))
        return not (self.text_models is not None and self.text_models.search(model))

    def takes_tool_images(self, model: str) -> bool:
        if isinstance(self.tool_images, bool):
            return self.tool_images
        return bool(self.tool_images.search(model))


def pattern(regex: str) -> re.Pattern[str]:
    """A case-insensitive model-name pattern."""
    return re.compile(regex, re.IGNORECASE)


# -- request-level checks ------------------------------------------------------------------------
def has_media(messages: list[WorkerMessage]) -> bool:
    return any(
        isinstance(m.content, list) and any(p.get("type") != "text" for p in m.content)
        for m in messages
    )


def prepare_media(
    request: ChatRequest,
    rules: MediaRules,
    provider: str,
    *,
    vision: bool | None = None,
    local_dir: str | None = None,
) -> ChatRequest:
    """Check every media part against `rules` and put it in the provider's wire form.

    `vision` overrides the model-name rule (a deployment whose name says nothing);
    `local_dir` is the directory `file://` URLs may be read from (None: they are refused).
    """
    if not has_media(request.messages):
        return request
    checker = _Checker(request.model, rules, provider, vision, local_dir)
    messages = [checker.message(m, i) for i, m in enumerate(request.messages)]
    return replace(request, messages=messages)


class _Checker:
    def __init__(
        self,
        model: str,
        rules: MediaRules,
        provider: str,
        vision: bool | None,
        local_dir: str | None,
    ) -> None:
        self.model, self.rules, self.provider = model, rules, provider
        self.vision = rules.takes_images(model) if vision is None else vision
        self.local_dir = local_dir
        self.images = 0

    def error(self, message: str, index: int) -> BadRequestError:
        return BadRequestError(
            f"{self.provider} model {self.model!r}: {message}",
            provider=self.provider,
            param=f"messages[{index}].content",
            code="invalid_image" if "image" in message else "invalid_content",
        )

    def message(self, message: WorkerMessage, index: int) -> WorkerMessage:
        if not isinstance(message.content, list):
            return message
        parts = [self.part(part, message.role, index) for part in message.content]
        return replace(message, content=parts)

    def part(self, part: dict[str, Any], role: str, index: int) -> dict[str, Any]:
        kind = part.get("type")
        if kind == "text":
            return part
        if kind == "image_url":
            self.media_allowed("image", role, index)
            return self.image(part, index)
        if kind == "video":
            self.media_allowed("video", role, index)
            return self.video(part, index)
        if kind == "input_audio":
            self.media_allowed("audio", role, index)
            return self.audio(part, index)
        raise self.error(f"content parts of type {kind!r} are not supported", index)

    def media_allowed(self, what: str, role: str, index: int) -> None:
        rules = self.rules
        if what == "image":
            allowed = self.vision
        else:
            models = rules.video_models if what == "video" else rules.audio_models
            allowed = models is not None and bool(models.search(self.model))
        if not allowed:
            hint = f"; use a vision model such as {rules.example!r}" if rules.example else ""
            raise self.error(f"this model does not accept {what} input{hint}", index)
        if role == "tool" and not (what == "image" and rules.takes_tool_images(self.model)):
            raise self.error(
                f"{self.provider} does not accept {what}s in tool results for this model", index
            )
        if role not in ("user", "tool"):
            raise self.error(f"{what}s are accepted in user messages only, not {role}", index)

    def image(self, part: dict[str, Any], index: int) -> dict[str, Any]:
        rules = self.rules
        image_url = part.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else image_url
        if not isinstance(url, str) or not url:
            raise self.error("an image_url part needs a non-empty url", index)
        self.images += 1
        if rules.max_images is not None and self.images > rules.max_images:
            raise self.error(f"at most {rules.max_images} image(s) per request", index)
        scheme = urlparse(url).scheme.lower() if ":" in url[:10] else ""
        if scheme in ("http", "https"):
            if not rules.remote_urls:
                raise self.error(
                    "image URLs are not accepted; send the image inline as a base64 data URL",
                    index,
                )
            wire = url
        else:
            data = self.inline_bytes(url, scheme, index)
            info = self.check_image(data, index)
            encoded = base64.b64encode(data).decode("ascii")
            wire = encoded if rules.inline == "base64" else f"data:{info.mime};base64,{encoded}"
        result: dict[str, Any] = {"url": wire}
        detail = image_url.get("detail") if isinstance(image_url, dict) else None
        if detail is not None and rules.detail:
            if detail not in ("auto", "low", "high"):
                raise self.error(f"image detail must be auto, low or high, not {detail!r}", index)
            result["detail"] = detail
        return {"type": "image_url", "image_url": result}

    def video(self, part: dict[str, Any], index: int) -> dict[str, Any]:
        """A video URL (OpenAI-style `video_url` part) or, where accepted, a list of frames."""
        video = part.get("video")
        if isinstance(video, list):
            if not self.rules.video_frames:
                raise self.error("video as a list of frame images is not accepted", index)
            frames = [self.image({"image_url": {"url": frame}}, index) for frame in video]
            return {"type": "video", "video": [f["image_url"]["url"] for f in frames]}
        if not isinstance(video, str) or not video:
            raise self.error("a video part needs a URL or a list of frame URLs", index)
        remote = video.lower().startswith(("http://", "https://"))
        if remote and not self.rules.remote_urls:
            raise self.error("video URLs are not accepted; send the video inline", index)
        if not remote and not video.startswith("data:video/"):
            raise self.error("a video must be an http(s) URL or a data:video/... URL", index)
        if not remote:
            self.check_video(decode_data_url(video, lambda m: self.error(m, index)), index)
        if self.rules.video_frames:
            return {"type": "video", "video": video}
        return {"type": "video_url", "video_url": {"url": video}}

    def check_video(self, data: bytes, index: int) -> None:
        rules = self.rules
        if not rules.video_inline:
            raise self.error(
                "inline videos are not accepted; send the video as an http(s) video URL", index
            )
        if len(data) > rules.max_video_bytes:
            limit = rules.max_video_bytes
            raise self.error(
                f"the video is {len(data)} bytes; the limit is {limit} bytes ({limit / MIB:g} MiB)",
                index,
            )
        container = sniff_video(data)
        if container is None:
            raise self.error("the video data is not a recognised video format", index)
        if container not in rules.video_formats:
            supported = ", ".join(sorted(rules.video_formats))
            raise self.error(f"{container} videos are not accepted (supported: {supported})", index)

    def audio(self, part: dict[str, Any], index: int) -> dict[str, Any]:
        """OpenAI's `input_audio`: base64 data in wav or mp3."""
        audio = part.get("input_audio")
        if not isinstance(audio, dict) or audio.get("format") not in ("wav", "mp3"):
            raise self.error("input_audio needs base64 data and a format of wav or mp3", index)
        decode_base64(str(audio.get("data") or ""), lambda message: self.error(message, index))
        return {
            "type": "input_audio",
            "input_audio": {"data": audio["data"], "format": audio["format"]},
        }

    def inline_bytes(self, url: str, scheme: str, index: int) -> bytes:
        if scheme == "data":
            return decode_data_url(url, lambda message: self.error(message, index))
        if scheme == "file":
            return self.local_file(url, index)
        if not scheme:  # bare base64 (Zhipu's own form)
            return decode_base64(url, lambda message: self.error(message, index))
        raise self.error(f"unsupported image URL scheme {scheme!r}", index)

    def local_file(self, url: str, index: int) -> bytes:
        if self.local_dir is None:
            raise self.error(
                "file:// images are not enabled; the operator may allow a directory "
                "(local_media_dir), or send the image as a base64 data URL",
                index,
            )
        root = os.path.realpath(self.local_dir)
        path = os.path.realpath(unquote(urlparse(url).path))
        if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
            raise self.error("the file:// image is not a file inside the allowed directory", index)
        if os.path.getsize(path) > self.rules.max_image_bytes:
            raise self.too_large(os.path.getsize(path), index)
        with open(path, "rb") as handle:
            return handle.read()

    def too_large(self, size: int, index: int) -> BadRequestError:
        limit = self.rules.max_image_bytes
        return self.error(
            f"the image is {size} bytes; the limit is {limit} bytes ({limit // MIB} MiB)", index
        )

    def check_image(self, data: bytes, index: int) -> ImageInfo:
        rules = self.rules
        if len(data) > rules.max_image_bytes:
            raise self.too_large(len(data), index)
        info = sniff_image(data)
        if info is None:
            raise self.error("the image data is not a recognised image format", index)
        if info.format not in rules.formats:
            supported = ", ".join(sorted(rules.formats))
            raise self.error(
                f"{info.format} images are not accepted (supported: {supported})", index
            )
        width, height = info.width, info.height
        if width is not None and height is not None:
            if rules.min_side is not None and min(width, height) <= rules.min_side:
                raise self.error(
                    f"the image is {width}x{height}; both sides must exceed {rules.min_side} pixels",
                    index,
                )
            if rules.max_side is not None and max(width, height) > rules.max_side:
                raise self.error(
                    f"the image is {width}x{height}; sides may be at most {rules.max_side} pixels",
                    index,
                )
            if rules.max_pixels is not None and width * height > rules.max_pixels:
                raise self.error(
                    f"the image is {width}x{height}; at most {rules.max_pixels} pixels",
                    index,
                )
        return info


# -- data URLs --------------------------------------------------------------------------------------
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*);base64,(.*)$", re.DOTALL)


def decode_data_url(url: str, error: Any) -> bytes:
    """The bytes of a base64 `data:` URL; `error(message)` builds the exception to raise."""
    match = _DATA_URL.match(url)
    if match is None:
        raise error("a data URL must look like data:<mime type>;base64,<data>")
    return decode_base64(match.group(3), error)


def decode_base64(text: str, error: Any) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise error("the media data is not valid base64") from None
