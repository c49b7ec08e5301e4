"""The langchain-tests image switches, set from each worker's media rules, and the picture the
standard image tests download — served offline.

`test_image_inputs` / `test_image_tool_message` fetch a PNG from raw.githubusercontent.com with
`httpx.get` and also pass its URL to the model. Offline, the `_standard_image_offline` fixture answers
that `httpx.get` with a real PNG and gives the bytes to the emulators' `remote_images`, so the
emulator "downloads" the same picture a provider would.
"""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

STANDARD_IMAGE_URL = (
    "https://raw.githubusercontent.com/langchain-ai/docs/4d11d08b6b0e210bd456943f7a22febbd168b543"
    "/src/images/agentic-rag-output.png"
)


def _picture() -> bytes:
    image = Image.new("RGB", (320, 200), "white")
    for x in range(320):
        image.putpixel((x, 100), (x % 256, 40, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


class StandardImages:
    """Image switches from the chat model's worker: on when the model under test takes images."""

    tested_model: str
    chat_model_class: Any

    def image_emulators(self) -> list[Any]:
        """The emulators that should "download" the standard picture (integration suites)."""
        return []

    @pytest.fixture(autouse=True)
    def _standard_image_offline(self, monkeypatch: pytest.MonkeyPatch) -> None:
        picture = _picture()
        real_get = httpx.get

        def get(url: Any, *args: Any, **kwargs: Any) -> httpx.Response:
            if str(url) == STANDARD_IMAGE_URL:
                return httpx.Response(200, content=picture, headers={"content-type": "image/png"})
            return real_get(url, *args, **kwargs)

        monkeypatch.setattr(httpx, "get", get)
        for emulator in self.image_emulators():
            emulator.remote_images[STANDARD_IMAGE_URL] = picture

    @property
    def worker_type(self) -> Any:
        return self.chat_model_class.worker_class

    @property
    def _media(self) -> Any:
        worker = self.worker_type
        return worker.media_rules if worker.message_rules.images else None

    @property
    def supports_image_inputs(self) -> bool:
        return self._media is not None and self._media.takes_images(self.tested_model)

    @property
    def supports_image_urls(self) -> bool:
        return self.supports_image_inputs and self._media.remote_urls

    @property
    def supports_image_tool_message(self) -> bool:
        return self.supports_image_inputs and self._media.tool_images
