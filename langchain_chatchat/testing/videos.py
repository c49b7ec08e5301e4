"""Video files as the emulators receive them: fetched or decoded, sniffed, described.

A provider opens every video it is sent. The emulators cannot decode frames without heavy
dependencies, so they read what the container's header says about itself — the container
(ISO-BMFF `ftyp` brand for MP4/MOV/3GP, the EBML header's DocType for WebM/Matroska, RIFF `AVI `,
FLV, ASF for WMV, MPEG program/elementary stream start codes) and, for MP4/MOV, the duration in
the `moov/mvhd` box — and describe it with its byte size and a short SHA-256, so a test can
assert that exactly its bytes reached the provider.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from langchain_chatchat.testing.images import (
    ImageProblem,
    decode_base64,
    fetch_image,
    split_data_url,
)

__all__ = ["SeenVideo", "VideoRules", "mp4_duration", "sniff_video"]

_QUICKTIME_BRANDS = {b"qt  "}
_3GP_BRANDS = re.compile(rb"^3g[2p]")
_HEIF_BRANDS = {b"heic", b"heix", b"mif1", b"msf1", b"heif", b"avif"}
_ASF_HEADER = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def sniff_video(data: bytes) -> str | None:
    """The container of a video file from its first bytes; None if it is not a video."""
    if data[4:8] == b"ftyp" and len(data) >= 12:
        brand = data[8:12]
        if brand in _HEIF_BRANDS:  # still images in the same box format
            return None
        if brand in _QUICKTIME_BRANDS:
            return "mov"
        return "3gp" if _3GP_BRANDS.match(brand) else "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # EBML; the DocType names WebM or Matroska
        return "webm" if b"webm" in data[:64] else "mkv"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    if data[:3] == b"FLV" and len(data) >= 9:
        return "flv"
    if data[:16] == _ASF_HEADER:
        return "wmv"
    if data[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg"
    return None


def mp4_duration(data: bytes) -> float | None:
    """Seconds from the `mvhd` box of an MP4/MOV file (ISO/IEC 14496-12 §8.2.2); None if absent."""
    moov = _box(data, 0, len(data), b"moov")
    if moov is None:
        return None
    mvhd = _box(data, moov[0], moov[1], b"mvhd")
    if mvhd is None:
        return None
    start, end = mvhd
    version = data[start] if start < end else None
    if version == 0 and end - start >= 20:
        timescale, duration = struct.unpack(">II", data[start + 12 : start + 20])
    elif version == 1 and end - start >= 32:
        timescale, duration = struct.unpack(">IQ", data[start + 20 : start + 32])
    else:
        return None
    return duration / timescale if timescale else None


def _box(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """(payload start, payload end) of the first `kind` box among the boxes in data[start:end]."""
    position = start
    while position + 8 <= end:
        size, name = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1 and position + 16 <= end:
            (size,) = struct.unpack(">Q", data[position + 8 : position + 16])
            header = 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            return None
        if name == kind:
            return position + header, position + size
        position += size
    return None


@dataclass(frozen=True)
class SeenVideo:
    container: str
    size: int
    digest: str
    duration: float | None = None

    @classmethod
    def of(cls, container: str, data: bytes) -> SeenVideo:
        duration = mp4_duration(data) if container in ("mp4", "mov", "3gp") else None
        return cls(container, len(data), hashlib.sha256(data).hexdigest()[:12], duration)

    def describe(self) -> str:
        return f"{self.container} video {self.size} bytes sha256:{self.digest}"


@dataclass(frozen=True)
class VideoRules:
    """One provider's documented video rules, as an emulator enforces them.

    ``errors``: kind → (HTTP status, provider code, message with ``{detail}``) for the kinds
    ``model``, ``role``, ``url``, ``inline``, ``decode``, ``format``, ``size``, ``download``.
    """

    errors: Mapping[str, tuple[int, str, str]]
    models: str | None = None
    containers: frozenset[str] = frozenset({"mp4"})
    max_bytes: int = 20 * 1024 * 1024
    max_seconds: float | None = None
    """Longest duration, checked where the container states it (MP4/MOV `mvhd`)."""
    urls: bool = True
    inline: bool = True

    def takes_video(self, model: str) -> bool:
        return self.models is None or re.search(self.models, model, re.IGNORECASE) is not None

    def check(self, reference: str, remote_media: Mapping[str, bytes]) -> SeenVideo:
        """Load and check one video reference (an http(s) URL or a base64 data URL)."""
        if reference.startswith(("http://", "https://")):
            if not self.urls:
                raise ImageProblem("url", reference[:100])
            data = fetch_image(reference, remote_media, self.max_bytes)
        elif reference.startswith("data:"):
            if not self.inline:
                raise ImageProblem("inline", "a base64 video where a URL is expected")
            _, data = split_data_url(reference)
        else:
            data = decode_base64(reference) if self.inline else b""
            if not data:
                raise ImageProblem("decode", f"unsupported video reference {reference[:40]!r}")
        if len(data) > self.max_bytes:
            raise ImageProblem("size", f"{len(data)} bytes > {self.max_bytes}")
        container = sniff_video(data)
        if container is None:
            raise ImageProblem("decode", "the data is not a video file")
        if container not in self.containers:
            raise ImageProblem("format", container)
        seen = SeenVideo.of(container, data)
        if self.max_seconds is not None and (seen.duration or 0) > self.max_seconds:
            raise ImageProblem("size", f"{seen.duration:g} s > {self.max_seconds:g} s")
        return seen
