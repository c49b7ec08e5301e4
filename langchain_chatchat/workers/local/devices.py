"""Where a transformers model runs and in which precision, and how much it may batch there.

"auto" picks cuda, then mps, then cpu; dtype "auto" is bfloat16 on GPUs that support it,
float16 on other GPUs and float32 on CPU (half precision is slower than float32 on most CPUs).
`device_map` hands placement across several GPUs to accelerate; `quantization` loads 4- or 8-bit
weights through bitsandbytes when it is installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from langchain_chatchat.workers.errors import ChatchatError

GiB = 1024**3
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
# tokens of KV cache each batch slot is sized for when deriving a batch size from free memory
_SLOT_TOKENS = 2048


class DeviceError(ChatchatError):
    """The configured device, precision or placement cannot be used on this machine
    (no such GPU, bitsandbytes missing, the model does not fit)."""

    status_code = 503
    openai_type = "api_error"


@dataclass(frozen=True)
class Placement:
    device: str = "auto"
    """"auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:1", "mps"."""
    dtype: str = "auto"
    """"auto", "float32", "float16", "bfloat16" (or fp32 / fp16 / bf16)."""
    device_map: str | None = None
    """accelerate placement over several devices ("auto", "balanced"); overrides `device`."""
    quantization: Literal["4bit", "8bit"] | None = None
    """bitsandbytes weight quantisation (GPU only)."""

    def torch_device(self) -> torch.device:
        """The device to load onto, or DeviceError when it is not present here."""
        name = self.device.strip().lower()
        if name == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            if torch.backends.mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        try:
            device = torch.device(name)
        except RuntimeError as error:
            raise DeviceError(
                f"unknown device {self.device!r}: {error}", provider="local"
            ) from error
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise DeviceError(
                    f"device {self.device!r} was asked for, but torch sees no CUDA GPU here "
                    f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                    "use device='auto' or 'cpu'",
                    provider="local",
                )
            if (device.index or 0) >= count:
                raise DeviceError(
                    f"device {self.device!r} does not exist; this machine has {count} CUDA GPU(s)",
                    provider="local",
                )
        elif device.type == "mps" and not torch.backends.mps.is_available():
            raise DeviceError(f"device {self.device!r} is not available here", provider="local")
        elif device.type not in ("cpu", "cuda", "mps"):
            raise DeviceError(f"unsupported device {self.device!r}", provider="local")
        return device

    def torch_dtype(self, device: torch.device) -> torch.dtype:
        name = _ALIASES.get(self.dtype.lower(), self.dtype.lower())
        if name == "auto":
            if device.type == "cuda":
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if device.type == "mps":
                return torch.float16
            return torch.float32
        if name not in _DTYPES:
            raise DeviceError(
                f"unknown dtype {self.dtype!r}; use auto, float32, float16 or bfloat16",
                provider="local",
            )
        return _DTYPES[name]

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `from_pretrained` (the model then needs no `.to()`)."""
        device = self.torch_device() if self.device_map is None else None
        dtype = self.torch_dtype(device or _first_gpu())
        kwargs: dict[str, Any] = {"dtype": dtype}
        if self.device_map is not None:
            kwargs["device_map"] = self.device_map
        elif device is not None and device.type != "cpu":
            kwargs["device_map"] = str(device)
        if self.quantization is not None:
            kwargs["quantization_config"] = self._quantization_config(dtype)
        return kwargs

    def _quantization_config(self, dtype: torch.dtype) -> Any:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise DeviceError(
                f"quantization={self.quantization!r} needs bitsandbytes; "
                "run `pip install bitsandbytes`",
                provider="local",
            )
        from transformers import BitsAndBytesConfig

        if self.quantization == "4bit":
            return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype)
        return BitsAndBytesConfig(load_in_8bit=True)

    def check_fits(self, weights: Path) -> None:
        """DeviceError when the weights in `weights` (a directory) exceed the GPU's free memory."""
        if self.device_map is not None or self.quantization is not None:
            return  # accelerate / bitsandbytes place and shrink the weights themselves
        device = self.torch_device()
        if device.type != "cuda":
            return
        files = list(weights.glob("*.safetensors")) + list(weights.glob("*.bin"))
        stored = sum(path.stat().st_size for path in files)
        needed = stored * _bytes_per(self.torch_dtype(device)) / 4  # stored as float32
        free, _ = torch.cuda.mem_get_info(device)
        if needed > free:
            raise DeviceError(
                f"the model needs about {needed / GiB:.1f} GiB on {device}, which has "
                f"{free / GiB:.1f} GiB free; use device_map='auto', quantization='4bit', "
                "or a smaller model",
                provider="local",
            )

    def batch_size_for(self, model: Any, *, default: int = 8, most: int = 64) -> int:
        """Sequences to batch when none is configured: from free GPU memory, else `default`."""
        device = model.device
        if device.type != "cuda":
            return default
        config = model.config
        layers = getattr(config, "num_hidden_layers", 0)
        attention_heads: int = getattr(config, "num_attention_heads", 0)
        kv_heads: int | None = getattr(config, "num_key_value_heads", None)
        heads = kv_heads or attention_heads
        head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // max(1, config.num_attention_heads)
        )
        per_slot = 2 * layers * heads * head_dim * _bytes_per(model.dtype) * _SLOT_TOKENS
        if per_slot <= 0:
            return default
        free, _ = torch.cuda.mem_get_info(device)
        return max(1, min(most, int(free * 0.8 // per_slot)))


def _first_gpu() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _bytes_per(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
