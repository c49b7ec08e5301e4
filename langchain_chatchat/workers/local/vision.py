"""Local vision-language models (transformers' image-text-to-text family) behind `ChatLocal`.

A directory whose `config.json` has a `vision_config` (LLaVA, Qwen2-VL, Idefics3/SmolVLM, ...)
is loaded with `AutoProcessor` and `AutoModelForImageTextToText`; images are decoded from the
data URLs `prepare_media` produced, and the processor's chat template places them. Generation
runs on a background thread and streams through `TextIteratorStreamer`. Tools are not offered
(vision chat templates rarely define them); text-only local models keep the text engine.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

from langchain_chatchat.workers.base import ChatWorker, MessageRules
from langchain_chatchat.workers.content import MediaRules
from langchain_chatchat.workers.types import ChatDelta, ChatRequest, Usage, WorkerMessage

DEFAULT_MAX_NEW_TOKENS = 256


def is_vision_model(model: str) -> bool:
    """True for a local model directory whose config describes a vision tower."""
    config = Path(model) / "config.json"
    try:
        return "vision_config" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


class LocalVisionWorker(ChatWorker):
    provider: ClassVar[str] = "local"
    message_rules: ClassVar[MessageRules] = MessageRules(tools=False, images=True)
    media_rules: ClassVar[MediaRules] = MediaRules(
        formats=frozenset({"png", "jpeg", "gif", "webp", "bmp"}),
        remote_urls=False,  # the gateway never downloads: images come inline
        detail=False,
        example="a vision-language model directory",
    )

    def __init__(self, model: str, *, dtype: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_path = model
        self.dtype = dtype
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the processor and weights (once; later calls return at once)."""
        with self._lock:
            if self._loaded is None:
                from transformers import AutoModelForImageTextToText, AutoProcessor

                processor = AutoProcessor.from_pretrained(self.model_path)
                model = AutoModelForImageTextToText.from_pretrained(
                    self.model_path, dtype=self.dtype or "float32"
                ).eval()
                self._loaded = (processor, model)

    def warm(self) -> None:
        self.load()

    # -- generation ---------------------------------------------------------------------------
    def _call(self, request: ChatRequest) -> Iterator[ChatDelta]:
        self.load()
        assert self._loaded is not None
        processor, model = self._loaded
        chat, images = _chat_and_images(request.messages)
        prompt = processor.apply_chat_template(chat, add_generation_prompt=True)
        inputs = processor(text=[prompt], images=images or None, return_tensors="pt")
        usage = Usage(int(inputs["input_ids"].shape[1]), 0, 0)
        if images:
            usage.image_tokens = _image_tokens(model, inputs["input_ids"])
        limit = request.max_tokens or DEFAULT_MAX_NEW_TOKENS
        yield from _generate(processor, model, inputs, request, limit, usage)

    async def _acall(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """The sync generator on a worker thread, one delta at a time (the model is CPU/GPU
        bound; the event loop stays free)."""
        iterator = self._call(request)
        done = object()
        while (delta := await asyncio.to_thread(next, iterator, done)) is not done:
            yield delta  # type: ignore[misc]


def _chat_and_images(messages: list[WorkerMessage]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Messages in the processors' chat format ({"type": "image"} placeholders) and the images."""
    from PIL import Image

    chat, images = [], []
    for message in messages:
        if isinstance(message.content, str):
            parts = [{"type": "text", "text": message.content}]
        else:
            parts = []
            for part in message.content:
                if part["type"] == "text":
                    parts.append({"type": "text", "text": part["text"]})
                else:  # prepare_media left only inline images here
                    encoded = part["image_url"]["url"].partition(",")[2]
                    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
                    images.append(image.convert("RGB"))
                    parts.append({"type": "image"})
        chat.append({"role": message.role, "content": parts})
    return chat, images


def _generate(
    processor: Any,
    model: Any,
    inputs: Any,
    request: ChatRequest,
    limit: int,
    usage: Usage,
) -> Iterator[ChatDelta]:
    """Stream the reply; the last delta carries `usage` (its prompt counts filled in already)."""
    import torch
    from transformers import TextIteratorStreamer

    tokenizer = processor.tokenizer
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = request.temperature is not None and request.temperature > 0
    options: dict[str, Any] = {"max_new_tokens": limit, "do_sample": sampling, "streamer": streamer}
    if sampling:
        options.update(temperature=request.temperature, top_p=request.top_p or 1.0)
    if request.stop:
        options.update(stop_strings=request.stop, tokenizer=tokenizer)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with torch.inference_mode():
                if request.seed is not None:
                    torch.manual_seed(request.seed)
                result["ids"] = model.generate(**inputs, **options)
        except Exception as error:  # reported on the caller's thread
            result["error"] = error
            streamer.end()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    text, stopped = "", False
    for piece in streamer:
        cut = _cut_at_stop(text + piece, request.stop)
        if cut is not None:  # the rest is the stop sequence and what came with it
            if len(cut) > len(text):
                yield ChatDelta(text=cut[len(text) :])
            stopped = True
            break
        text += piece
        if piece:
            yield ChatDelta(text=piece)
    thread.join()
    if "error" in result:
        raise result["error"]
    generated = int(result["ids"].shape[1]) - usage.input_tokens
    usage.output_tokens, usage.total_tokens = generated, usage.input_tokens + generated
    yield ChatDelta(
        finish_reason="stop" if stopped or generated < limit else "length",
        usage=usage,
        model=request.model,
    )


def _cut_at_stop(text: str, stop: list[str] | None) -> str | None:
    """`text` up to its first stop sequence, or None when there is none."""
    cuts = [index for index in (text.find(s) for s in stop or ()) if index >= 0]
    return text[: min(cuts)] if cuts else None


def _image_tokens(model: Any, input_ids: Any) -> int | None:
    """How many prompt positions the processor gave the images: its image placeholder token,
    repeated once per image feature."""
    config = model.config
    token = getattr(config, "image_token_id", None)
    if token is None:
        token = getattr(config, "image_token_index", None)
    return None if token is None else int((input_ids == token).sum())
