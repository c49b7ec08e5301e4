"""Local generation speed: both ChatLocal engines against their raw libraries, in one run.

    python benchmarks/local_generation.py [--tokens 64] [--repeats 3] [--batch-repeats 3]

Same model for all four (the shipped SmolLM2-135M-Instruct Q4_1 GGUF), same prompt, greedy,
`--tokens` new tokens, the process's CPU cores (2 on the CI machine):

- raw transformers `model.generate` on the de-quantised GGUF, vs ChatLocal(engine="transformers");
- raw llama-cpp-python `Llama.generate` on the GGUF, vs ChatLocal(engine="llama_cpp");

Every one gets the same prompt tokens: the model's chat template (its default system prompt
included) rendered by the transformers tokenizer. Single stream: tokens/s and time to first token
for one prompt asked `--repeats` times, each time after a new prompt (whose time to first token
is reported too), so what a prompt cache can reuse is the template's system prompt (raw
llama-cpp-python and both ChatLocal engines have one; raw `generate` has none). The four take
turns, round after round, and each reports its medians. Then 8
concurrent streams through ChatLocal (aggregate tokens/s) vs the same 8 requests one after
another, alternately, `--batch-repeats` times (medians).
Targets: llama.cpp engine >= 0.9x raw llama.cpp single-stream and 8 concurrent > 8 sequential;
transformers engine >= 1.0x raw generate single-stream and >= 3x aggregate at 8 concurrent.
A missed target is named in the last line and the exit status is 1.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

from langchain_chatchat.chat_models.local import ChatLocal
from langchain_chatchat.workers.local import llama
from langchain_chatchat.workers.local.loading import SMOLLM2, ModelSource, load_causal_lm

PROMPT = "Write a short paragraph about the history of Paris."
PROMPTS = [
    PROMPT,
    "Describe a day in the life of a lighthouse keeper.",
    "Explain how a steam engine works, step by step.",
    "Tell me about the history of the printing press.",
    "Write a letter from a sailor to his family.",
    "Describe the water cycle to a ten-year-old.",
    "Write a story about a dragon who is afraid of the dark.",
    "Explain why the sky is blue in detail.",
]


@dataclass
class Single:
    tokens_per_s: float
    ttft_ms: float
    new_prompt_ttft_ms: float


Run = Callable[[str], tuple[int, float]]
"""One generation for a prompt: (tokens generated, seconds to the first token)."""


def measure(runs: dict[str, Run], repeats: int) -> dict[str, Single]:
    """Every run once per round, rounds interleaved (so a slower minute of a shared machine
    falls on all of them alike); the median of each."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    firsts: dict[str, list[float]] = {name: [] for name in runs}
    new_firsts: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            tokens, first = run(PROMPT)
            rates[name].append(tokens / (time.perf_counter() - start))
            firsts[name].append(first)
            new_firsts[name].append(run(f"{PROMPTS[repeat % len(PROMPTS)]} ({repeat})")[1])
    return {
        name: Single(
            statistics.median(rates[name]),
            statistics.median(firsts[name]) * 1000,
            statistics.median(new_firsts[name]) * 1000,
        )
        for name in runs
    }


def chat_prompt(tokenizer: Any, prompt: str) -> str:
    """The prompt as the model's chat template renders it (the reference for every run)."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )


def raw_transformers(tokens: int) -> Run:
    model, tokenizer = load_causal_lm(ModelSource.resolve(SMOLLM2.name))

    def run(prompt: str) -> tuple[int, float]:
        inputs = tokenizer(chat_prompt(tokenizer, prompt), return_tensors="pt")
        with torch.inference_mode():
            start = time.perf_counter()
            model.generate(**inputs, max_new_tokens=1, do_sample=False)
            first = time.perf_counter() - start
            output = model.generate(**inputs, max_new_tokens=tokens, do_sample=False)
        return output.shape[1] - inputs["input_ids"].shape[1], first

    return run


def raw_llama(tokens: int) -> Run:
    import llama_cpp

    source = ModelSource.resolve(SMOLLM2.name)
    _, tokenizer = load_causal_lm(source)
    model = llama_cpp.Llama(
        str(Path(source.location) / str(source.gguf_file)),
        n_ctx=512,
        n_threads=llama.cpu_threads(),
        n_threads_batch=llama.cpu_threads(),
        verbose=False,
    )
    stop = model.token_eos()

    def run(prompt: str) -> tuple[int, float]:
        rendered = model.tokenize(
            chat_prompt(tokenizer, prompt).encode(), add_bos=False, special=True
        )
        start, first, count = time.perf_counter(), 0.0, 0
        # reset=True still keeps the longest prefix it evaluated before (llama-cpp-python)
        generator = model.generate(rendered, temp=0.0, top_k=1, reset=True)
        for token in itertools.islice(generator, tokens):
            if count == 0:
                first = time.perf_counter() - start
            count += 1
            if token == stop:
                break
        return count, first

    return run


def ours(chat: ChatLocal) -> Run:
    def run(prompt: str) -> tuple[int, float]:
        start, first, last = time.perf_counter(), 0.0, None
        for chunk in chat.stream(prompt):
            if not first and chunk.content:
                first = time.perf_counter() - start
            last = chunk
        assert last is not None
        return last.usage_metadata["output_tokens"], first

    return run


def aggregate(chat: ChatLocal, concurrent: bool) -> float:
    """Tokens/s over the 8 prompts, all at once or one after another."""
    start = time.perf_counter()
    if concurrent:
        with ThreadPoolExecutor(len(PROMPTS)) as pool:
            counts = list(pool.map(lambda prompt: ours(chat)(prompt)[0], PROMPTS))
    else:
        counts = [ours(chat)(prompt)[0] for prompt in PROMPTS]
    return sum(counts) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=64, help="max new tokens per request")
    parser.add_argument("--repeats", type=int, default=3, help="single-stream runs (median)")
    parser.add_argument(
        "--batch-repeats", type=int, default=3, help="8-request rounds per engine (median)"
    )
    args = parser.parse_args()
    if not llama.available():
        print(f"llama-cpp-python is not installed; run `{llama.INSTALL}`")
        print("TARGETS NOT CHECKED: llama.cpp engine unavailable")
        return 1

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"SmolLM2-135M-Instruct Q4_1 GGUF, greedy, {args.tokens} new tokens, "
        f"{llama.cpu_threads()} cores / torch threads {torch.get_num_threads()}, "
        f"load average {load:.2f} at start"
    )
    engines = {
        name: ChatLocal(engine=name, temperature=0, max_tokens=args.tokens)
        for name in ("transformers", "llama_cpp")
    }
    runs: dict[str, Run] = {
        "raw transformers generate": raw_transformers(args.tokens),
        "ChatLocal transformers": ours(engines["transformers"]),
        "raw llama-cpp-python": raw_llama(args.tokens),
        "ChatLocal llama_cpp": ours(engines["llama_cpp"]),
    }
    for run in runs.values():
        run(PROMPT)  # warm-up: loads, first-call costs
    single = measure(runs, args.repeats)
    print(f"\n{'single stream':28} {'tokens/s':>9} {'TTFT ms':>9} {'new prompt TTFT ms':>19}")
    for name, result in single.items():
        print(
            f"{name:28} {result.tokens_per_s:9.1f} {result.ttft_ms:9.1f} "
            f"{result.new_prompt_ttft_ms:19.1f}"
        )

    print(f"\n{'8 requests (ChatLocal)':28} {'sequential':>11} {'concurrent':>11} {'ratio':>7}")
    batched = {}
    for name, chat in engines.items():
        rounds = [
            (aggregate(chat, False), aggregate(chat, True)) for _ in range(args.batch_repeats)
        ]
        one_by_one = statistics.median(sequential for sequential, _ in rounds)
        together = statistics.median(concurrent for _, concurrent in rounds)
        batched[name] = together / one_by_one
        print(f"{name:28} {one_by_one:11.1f} {together:11.1f} {batched[name]:6.2f}x")

    ours_llama, raw_cpp = single["ChatLocal llama_cpp"], single["raw llama-cpp-python"]
    ours_hf, raw_hf = single["ChatLocal transformers"], single["raw transformers generate"]
    checks = [  # (target, measured ratio, passes)
        (
            "llama_cpp single >= 0.9x raw llama.cpp",
            ratio := ours_llama.tokens_per_s / raw_cpp.tokens_per_s,
            ratio >= 0.9,
        ),
        ("llama_cpp 8 concurrent > 8 sequential", batched["llama_cpp"], batched["llama_cpp"] > 1.0),
        (
            "transformers single >= 1.0x raw generate",
            ratio := ours_hf.tokens_per_s / raw_hf.tokens_per_s,
            ratio >= 1.0,
        ),
        (
            "transformers 8 concurrent >= 3x sequential",
            batched["transformers"],
            batched["transformers"] >= 3.0,
        ),
    ]
    print()
    missed = []
    for name, ratio, ok in checks:
        print(f"{'ok  ' if ok else 'MISS'} {name}: {ratio:.2f}")
        if not ok:
            missed.append(f"{name} ({ratio:.2f})")
    for chat in engines.values():
        chat.worker.engine.close()
    if missed:
        print("TARGETS MISSED: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
