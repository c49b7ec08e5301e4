"""Images as the emulators receive them: fetched or decoded, opened with Pillow, described.

A provider decodes every image it is sent; the emulators do the same, so a test fails when an
image does not arrive intact (a truncated base64 string, a mislabelled format, a URL that does
not resolve). Each emulator answers with `SeenImage.describe()` — format, pixel size and a
short SHA-256 of the bytes — so a test can assert that exactly its image reached the provider.

Remote URLs are fetched with httpx (on 127.0.0.1 in tests); `remote_images` maps URLs to bytes
for pictures a test cannot serve itself.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from langchain_chatchat.testing.script import Reply

__all__ = [
    "ImageProblem",
    "ImageRules",
    "SeenAudio",
    "SeenImage",
    "fetch_image",
    "open_image",
    "seeing",
    "split_data_url",
]


class ImageProblem(Exception):
    """Why an image was refused; `kind` picks the provider's documented error."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


@dataclass(frozen=True)
class SeenImage:
    format: str
    width: int
    height: int
    size: int
    digest: str

    def describe(self) -> str:
        return f"{self.format} {self.width}x{self.height} sha256:{self.digest}"


@dataclass(frozen=True)
class SeenAudio:
    format: str
    size: int
    digest: str
    duration: float | None = None
    """Seconds, from a WAV header; None for other formats or an unreadable header."""

    @classmethod
    def of(cls, audio_format: str, data: bytes) -> SeenAudio:
        digest = hashlib.sha256(data).hexdigest()[:12]
        return cls(audio_format, len(data), digest, _wav_duration(data))

    def describe(self) -> str:
        return f"{self.format} audio {self.size} bytes sha256:{self.digest}"


def _wav_duration(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data)) as sound:
            return sound.getnframes() / sound.getframerate()
    except (wave.Error, EOFError, RuntimeError, ValueError, ZeroDivisionError):
        return None  # not a WAV file the stdlib can read: no duration


def open_image(data: bytes) -> SeenImage:
    """Decode `data` fully (as a provider does); raise `ImageProblem("decode")` if it is not an image."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as error:  # pragma: no cover - pillow ships with the test extra
        raise RuntimeError(
            "the emulators' image checks need Pillow (pip install pillow)"
        ) from error
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            kind = (image.format or "unknown").lower()
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageProblem("decode", f"cannot decode the image: {error}") from None
    return SeenImage(
        format="jpeg" if kind == "mpo" else kind,
        width=width,
        height=height,
        size=len(data),
        digest=hashlib.sha256(data).hexdigest()[:12],
    )


def split_data_url(url: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a base64 data URL."""
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise ImageProblem("decode", "not a base64 data URL")
    return head[5:].split(";")[0], decode_base64(payload)


def decode_base64(payload: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageProblem("decode", "invalid base64 data") from None


def fetch_image(url: str, remote_images: Mapping[str, bytes], max_bytes: int) -> bytes:
    """The bytes behind an http(s) URL, as the provider would download them."""
    if url in remote_images:
        return remote_images[url]
    try:
        with httpx.stream("GET", url, timeout=10.0, follow_redirects=True) as response:
            if response.status_code != 200:
                raise ImageProblem("download", f"HTTP {response.status_code} for {url}")
            data = b""
            for piece in response.iter_bytes():
                data += piece
                if len(data) > max_bytes:
                    raise ImageProblem("size", f"the image at {url} exceeds {max_bytes} bytes")
            return data
    except httpx.HTTPError as error:
        raise ImageProblem("download", f"error while downloading {url}: {error}") from None


@dataclass(frozen=True)
class ImageRules:
    """One provider's documented image rules, as an emulator enforces them.

    ``models``: regex of the model names that take images (None: every model); ``inline``:
    the accepted inline form — a data URL, or bare base64 (Zhipu); ``errors``: kind →
    (HTTP status, provider code, message with ``{detail}``) for the kinds ``model``, ``role``,
    ``url``, ``inline``, ``decode``, ``format``, ``size``, ``pixels``, ``download``, ``count``.
    """

    errors: Mapping[str, tuple[int, str, str]]
    models: str | None = None
    formats: frozenset[str] = frozenset({"png", "jpeg", "gif", "webp"})
    max_bytes: int = 20 * 1024 * 1024
    min_side: int = 0
    max_side: int | None = None
    max_pixels: int | None = None
    max_images: int | None = None
    urls: bool = True
    inline: str = "data_url"
    tool_images: bool = False
    audio_models: str | None = None
    """Regex of the models that take `input_audio` parts (None: no audio input)."""

    def takes_images(self, model: str) -> bool:
        import re

        return self.models is None or re.search(self.models, model, re.IGNORECASE) is not None

    def check(self, reference: str, remote_images: Mapping[str, bytes]) -> SeenImage:
        """Load and check one image reference (URL, data URL or bare base64)."""
        if reference.startswith(("http://", "https://")):
            if not self.urls:
                raise ImageProblem("url", reference[:100])
            data = fetch_image(reference, remote_images, self.max_bytes)
        elif reference.startswith("data:"):
            if self.inline != "data_url":
                raise ImageProblem("inline", "a data URL prefix where bare base64 is expected")
            _, data = split_data_url(reference)
        elif self.inline == "base64":
            data = decode_base64(reference)
        else:
            raise ImageProblem("decode", f"unsupported image reference {reference[:40]!r}")
        if len(data) > self.max_bytes:
            raise ImageProblem("size", f"{len(data)} bytes > {self.max_bytes}")
        seen = open_image(data)
        if seen.format not in self.formats:
            raise ImageProblem("format", seen.format)
        short, long = sorted((seen.width, seen.height))
        if (
            short <= self.min_side
            or (self.max_side is not None and long > self.max_side)
            or (self.max_pixels is not None and short * long > self.max_pixels)
        ):
            raise ImageProblem("pixels", f"{seen.width}x{seen.height}")
        return seen


class Described(Protocol):
    """Anything an emulator received and can name (an image, a sound, a video)."""

    def describe(self) -> str: ...


def seeing(reply: Reply, images: Sequence[Described]) -> Reply:
    """A default reply prefixed with what the model saw, so a test can check that each image
    arrived intact (left alone for tool calls and JSON answers, which must stay parseable)."""
    if not images or reply.tool_calls or reply.text.lstrip().startswith(("{", "[")):
        return reply
    seen = "; ".join(item.describe() for item in images)
    kind = "image(s)" if all(isinstance(i, SeenImage) for i in images) else "input(s)"
    return dataclasses.replace(reply, text=f"I see {len(images)} {kind}: {seen}. {reply.text}")
