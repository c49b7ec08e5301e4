"""The transformers engine on a CUDA GPU: correctness against CPU, and speed on both devices.

    python benchmarks/gpu_check.py [--tokens 64]

Needs a machine with a CUDA GPU (exits 1 saying so otherwise). For the shipped SmolLM2 and a tiny
random model (built offline, as the tests do) it runs greedy generation on cpu/float32, then on
cuda in float32 and bfloat16: one stream, and 8 concurrent streams (which must batch). Checks:
cuda float32 gives the CPU's greedy text for the tiny model; every SmolLM2 run answers "Paris";
the 8 concurrent answers equal the one-stream answer of the same device. Prints tokens/s per
device and precision. A failed check is named in the last line and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from langchain_chatchat.chat_models.local import ChatLocal
from langchain_chatchat.workers.local.loading import SMOLLM2
from tests.local.tiny_models import HERMES_TEMPLATE, build_tiny_chat_model

QUESTION = "Name the capital of France."


def run(chat: ChatLocal, concurrent: int) -> tuple[list[str], float]:
    """Replies to `concurrent` copies of the question, and aggregate tokens/s."""
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        replies = list(pool.map(chat.invoke, [QUESTION] * concurrent))
    tokens = sum(reply.usage_metadata["output_tokens"] for reply in replies)
    return [str(reply.content) for reply in replies], tokens / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch here: nothing checked")
        print("GPU CHECK NOT RUN: no CUDA GPU")
        return 1
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    tiny = build_tiny_chat_model(Path(tempfile.mkdtemp()) / "tiny")
    models = {
        "SmolLM2": {"model": SMOLLM2.name, "engine": "transformers"},
        "tiny": {"model": str(tiny), "chat_template": HERMES_TEMPLATE},
    }
    failures: list[str] = []
    print(f"\n{'model':8} {'device':6} {'dtype':9} {'1 stream tok/s':>15} {'8 streams tok/s':>16}")
    for name, params in models.items():
        reference = None
        for device, dtype in (("cpu", "float32"), ("cuda", "float32"), ("cuda", "bfloat16")):
            chat = ChatLocal(
                **params, device=device, dtype=dtype, temperature=0, max_tokens=args.tokens
            )
            chat.invoke(QUESTION)  # load and warm
            (solo,), solo_rate = run(chat, 1)
            batched, batch_rate = run(chat, 8)
            print(f"{name:8} {device:6} {dtype:9} {solo_rate:15.1f} {batch_rate:16.1f}")
            label = f"{name} {device} {dtype}"
            if reference is None:
                reference = solo
            elif name == "tiny" and dtype == "float32" and solo != reference:
                failures.append(f"{label}: greedy text differs from cpu")
            if name == "SmolLM2" and "Paris" not in solo:
                failures.append(f"{label}: no Paris in {solo!r}")
            if any(reply != solo for reply in batched) and dtype == "float32":
                failures.append(f"{label}: 8 concurrent replies differ from one stream")
            chat.worker.engine.close()
    if failures:
        print("GPU CHECK FAILED: " + "; ".join(failures))
        return 1
    print("GPU check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
