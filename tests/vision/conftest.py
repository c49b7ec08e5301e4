"""Images made with Pillow, and a loopback web server that hosts them for URL tests."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dashscope import close_shared_aio_session
from PIL import Image


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), color: str = "red") -> bytes:
    """An encoded image; a gradient so each size gives different bytes."""
    image = Image.new("RGB", size, color)
    for x in range(min(size[0], 32)):
        image.putpixel((x, 0), (x * 8, 0, 255 - x * 8))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{b64(data)}"


def seen(data: bytes, fmt: str = "png") -> str:
    """How the emulators describe an image that arrived intact."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    return f"{fmt} {width}x{height} sha256:{hashlib.sha256(data).hexdigest()[:12]}"


class ImageHost:
    """Serves bytes at paths on 127.0.0.1, like a CDN the provider downloads images from."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                found = host.files.get(self.path)
                if found is None:
                    self.send_error(404)
                    return
                data, mime = found
                self.send_response(200)
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, data: bytes, mime: str = "image/png") -> str:
        self.files[path] = (data, mime)
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    yield host
    host.close()


@pytest.fixture
def png() -> bytes:
    return image_bytes()


@pytest.fixture(autouse=True)
async def _close_sdk_sessions() -> Iterator[None]:
    """The dashscope SDK keeps one aiohttp session per event loop; close it with the loop."""
    yield
    await close_shared_aio_session()
