"""Device and precision choice; on a machine without a GPU every GPU request fails clearly."""

from __future__ import annotations

import pytest
import torch

from langchain_chatchat.chat_models.local import ChatLocal
from langchain_chatchat.workers.local.devices import DeviceError, Placement

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")


def test_auto_picks_the_best_device_present() -> None:
    device = Placement().torch_device()
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device == torch.device("cpu")
    assert Placement().torch_dtype(torch.device("cpu")) == torch.float32
    assert Placement(dtype="bf16").torch_dtype(torch.device("cpu")) == torch.bfloat16


@no_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_explicit_cuda_without_a_gpu_is_a_typed_error(tiny_chat_model: str, device: str) -> None:
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        Placement(device=device).torch_device()
    chat = ChatLocal(model=tiny_chat_model, device=device, max_retries=0)
    with pytest.raises(DeviceError, match="no CUDA GPU") as raised:
        chat.invoke("hi")
    assert raised.value.status_code == 503


def test_bad_names_are_typed_errors() -> None:
    with pytest.raises(DeviceError, match="unknown device"):
        Placement(device="tpu9").torch_device()
    with pytest.raises(DeviceError, match="unknown dtype"):
        Placement(dtype="int3").torch_dtype(torch.device("cpu"))


def test_explicit_cpu_and_dtype_are_honoured(tiny_chat_model: str) -> None:
    chat = ChatLocal(model=tiny_chat_model, device="cpu", dtype="bfloat16", max_tokens=4)
    assert chat.invoke("Hello").usage_metadata["output_tokens"] >= 1
    model = chat.worker.engine.model
    assert model.device == torch.device("cpu") and model.dtype == torch.bfloat16
    assert Placement().batch_size_for(model) == 8  # sized from free memory only on a GPU


def test_quantization_needs_bitsandbytes(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "bitsandbytes" else real(name)
    )
    with pytest.raises(DeviceError, match="pip install bitsandbytes"):
        Placement(device="cpu", quantization="4bit").load_kwargs()
