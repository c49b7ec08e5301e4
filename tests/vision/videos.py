"""Tiny video files built offline: real container headers around a few payload bytes.

Enough for the emulators, which sniff the container from the header and read an MP4's
duration from `moov/mvhd`; no frames are decoded anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import wave


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _mvhd(seconds: float, timescale: int = 1000) -> bytes:
    """A version-0 movie header (ISO/IEC 14496-12 §8.2.2): 100 bytes of payload."""
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    payload = (
        struct.pack(">I", 0)  # version 0, flags
        + struct.pack(">III", 0, 0, timescale)  # creation, modification, timescale
        + struct.pack(">I", round(seconds * timescale))
        + struct.pack(">IH", 0x10000, 0x100)  # rate 1.0, volume 1.0
        + bytes(10)
        + matrix
        + bytes(24)
        + struct.pack(">I", 2)  # next track id
    )
    return _box(b"mvhd", payload)


def mp4_bytes(seconds: float = 2.0, payload: bytes = b"frames", brand: bytes = b"isom") -> bytes:
    """ftyp + moov(mvhd) + mdat: an MP4 (or, with brand b"qt  ", a QuickTime MOV) header."""
    ftyp = _box(b"ftyp", brand + struct.pack(">I", 0x200) + b"isomiso2mp41")
    return ftyp + _box(b"moov", _mvhd(seconds)) + _box(b"mdat", payload)


def webm_bytes(payload: bytes = b"clusters") -> bytes:
    """An EBML header whose DocType is "webm", then payload."""
    doctype = b"\x42\x82\x84webm"
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(doctype)]) + doctype + payload


def avi_bytes(payload: bytes = b"movi") -> bytes:
    body = b"AVI " + _riff_list(b"hdrl", b"avih") + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _riff_list(kind: bytes, content: bytes) -> bytes:
    inner = kind + content
    return b"LIST" + struct.pack("<I", len(inner)) + inner


def video_data_url(data: bytes, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def seen_video(data: bytes, container: str = "mp4") -> str:
    """How the emulators describe a video that arrived intact."""
    return f"{container} video {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}"


def wav_bytes(seconds: float) -> bytes:
    """A silent mono 8 kHz WAV file of `seconds`."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(int(16000 * seconds)))
    return buffer.getvalue()
