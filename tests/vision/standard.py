"""The langchain-tests image and audio switches, set from each worker's media rules, and the
picture and sound the standard tests download — served offline.

`test_image_inputs` / `test_image_tool_message` fetch a PNG from raw.githubusercontent.com with
`httpx.get` and also pass its URL to the model. Offline, the `_standard_image_offline` fixture answers
that `httpx.get` with a real PNG and gives the bytes to the emulators' `remote_images`, so the
emulator "downloads" the same picture a provider would.
"""

from __future__ import annotations

import io
import wave
from typing import Any

import httpx
import pytest
from PIL import Image

STANDARD_AUDIO_URL = (
    "https://upload.wikimedia.org/wikipedia/commons/6/6a/Northern_Flicker_202280456.wav"
)
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


def _sound() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(1600))
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
        offline = {
            STANDARD_IMAGE_URL: (picture, "image/png"),
            STANDARD_AUDIO_URL: (_sound(), "audio/wav"),
        }
        real_get = httpx.get

        def get(url: Any, *args: Any, **kwargs: Any) -> httpx.Response:
            if str(url) in offline:
                content, mime = offline[str(url)]
                return httpx.Response(200, content=content, headers={"content-type": mime})
            return real_get(url, *args, **kwargs)

        monkeypatch.setattr(httpx, "get", get)
        monkeypatch.setenv("LANGCHAIN_TESTS_USER_AGENT", "langchain-chatchat-tests")
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
    def supports_audio_inputs(self) -> bool:
        audio = self._media.audio_models if self._media is not None else None
        return audio is not None and bool(audio.search(self.tested_model))

    @property
    def supports_image_tool_message(self) -> bool:
        return self.supports_image_inputs and self._media.takes_tool_images(self.tested_model)
