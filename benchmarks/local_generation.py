"""Local generation throughput on SmolLM2-135M-Instruct, measured in one run.

    python benchmarks/local_generation.py [--tokens 64] [--repeats 3]

Prints two ratios:
- single stream: tokens/s through ChatLocal.stream vs raw model.generate on the same prompt
  (greedy, same output; target >= 0.9) — what the engine, detokeniser and LangChain layers cost;
- concurrency: aggregate tokens/s of 8 concurrent requests vs the same 8 run one after another
  (target >= 3x) — what dynamic batching buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from langchain_chatchat.chat_models.local import ChatLocal, default_chat_model
from langchain_chatchat.workers.local.loading import ModelSource, load_causal_lm

STORY = "Write a long story about a robot who learns to paint."
PROMPTS = [
    STORY,
    "Describe a day in the life of a lighthouse keeper.",
    "Explain how a steam engine works, step by step.",
    "Tell me about the history of the printing press.",
    "Write a letter from a sailor to his family.",
    "Describe the water cycle to a ten-year-old.",
    "Write a story about a dragon who is afraid of the dark.",
    "Explain why the sky is blue in detail.",
]


def best_rate(run, repeats: int) -> float:
    """Median tokens/s over `repeats` runs of `run() -> tokens generated`."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = run()
        rates.append(tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def raw_generate(chat: ChatLocal, tokens: int):
    model, tokenizer = load_causal_lm(ModelSource.resolve(chat.model))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": STORY}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )

    def run() -> int:
        with torch.inference_mode():
            output = model.generate(**prompt, max_new_tokens=tokens, do_sample=False)
        return output.shape[1] - prompt["input_ids"].shape[1]

    return run


def chat_stream(chat: ChatLocal):
    def run() -> int:
        last = None
        for chunk in chat.stream(STORY):
            last = chunk
        return last.usage_metadata["output_tokens"]

    return run


def sequential(chat: ChatLocal):
    def run() -> int:
        return sum(chat.invoke(prompt).usage_metadata["output_tokens"] for prompt in PROMPTS)

    return run


def concurrent(chat: ChatLocal):
    def run() -> int:
        with ThreadPoolExecutor(len(PROMPTS)) as pool:
            replies = list(pool.map(chat.invoke, PROMPTS))
        return sum(reply.usage_metadata["output_tokens"] for reply in replies)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=64, help="max new tokens per request")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per measurement (median is kept)"
    )
    args = parser.parse_args()

    chat = default_chat_model(temperature=0, max_tokens=args.tokens)
    raw = raw_generate(chat, args.tokens)
    stream = chat_stream(chat)
    raw(), stream()  # warm-up
    print(
        f"SmolLM2-135M-Instruct, {torch.get_num_threads()} torch threads, "
        f"{args.tokens} new tokens, greedy"
    )

    raw_rate, stream_rate = best_rate(raw, args.repeats), best_rate(stream, args.repeats)
    print(
        f"single stream: model.generate {raw_rate:6.1f} tok/s | "
        f"ChatLocal.stream {stream_rate:6.1f} tok/s "
        f"| ratio {stream_rate / raw_rate:.2f} (target >= 0.9)"
    )

    one_by_one, together = best_rate(sequential(chat), 1), best_rate(concurrent(chat), args.repeats)
    print(
        f"{len(PROMPTS)} requests:     sequential {one_by_one:6.1f} tok/s | "
        f"concurrent {together:6.1f} tok/s "
        f"| ratio {together / one_by_one:.2f}x (target >= 3x)"
    )
    print(
        "batch sizes seen (size: decode steps):",
        dict(sorted(chat.worker.engine.batch_sizes.items())),
    )


if __name__ == "__main__":
    main()
