"""The dynamic batching engine on a tiny random model."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import pytest
import torch

from langchain_chatchat.workers.errors import UpstreamUnavailableError
from langchain_chatchat.workers.local.engine import (
    Finished,
    GenerationEngine,
    QueueFullError,
    SamplingParams,
)
from langchain_chatchat.workers.local.loading import ModelSource, load_causal_lm

PROMPTS = [
    "Hello, how are you?",
    "The capital",
    "a",
    "What is the capital of France? Tell me a story about a cat.",
]


@pytest.fixture(scope="module")
def loaded(tiny_chat_model: str):
    return load_causal_lm(ModelSource.resolve(tiny_chat_model))


@pytest.fixture
def engine(loaded) -> Iterator[GenerationEngine]:
    engine = GenerationEngine(loaded[0], max_batch_size=8, max_queue=8)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def prompts(loaded) -> list[list[int]]:
    return [loaded[1](text)["input_ids"] for text in PROMPTS]


def run(
    engine: GenerationEngine, prompt: list[int], params: SamplingParams
) -> tuple[list[int], Finished]:
    events: queue.SimpleQueue = queue.SimpleQueue()
    engine.submit(prompt, params, events.put)
    tokens = []
    while True:
        event = events.get(timeout=30)
        if isinstance(event, Finished):
            return tokens, event
        if isinstance(event, Exception):
            raise event
        tokens.append(event)


def run_concurrently(engine, prompts, params, stagger: float = 0.0):
    results: list = [None] * len(prompts)

    def one(i: int) -> None:
        time.sleep(stagger * i)
        results[i] = run(engine, prompts[i], params)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


GREEDY = SamplingParams(max_new_tokens=24)


def test_greedy_matches_transformers_generate(engine, loaded, prompts) -> None:
    model = loaded[0]
    for prompt in prompts:
        tokens, finished = run(engine, prompt, GREEDY)
        expected = model.generate(
            torch.tensor([prompt]), max_new_tokens=24, do_sample=False, eos_token_id=None
        )
        assert tokens == expected[0, len(prompt) :].tolist()
        assert finished == Finished("length", 24)


def test_concurrent_requests_share_one_batch_and_match_solo_output(engine, prompts) -> None:
    solo = [run(engine, prompt, GREEDY) for prompt in prompts]
    engine.batch_sizes.clear()
    batched = run_concurrently(engine, prompts, GREEDY)
    assert batched == solo
    assert max(engine.batch_sizes) == 4


def test_requests_joining_a_running_batch_match_solo_output(engine, prompts) -> None:
    long = SamplingParams(max_new_tokens=60)
    solo = [run(engine, prompt, long) for prompt in prompts]
    engine.batch_sizes.clear()
    joined = run_concurrently(engine, prompts, long, stagger=0.03)
    assert joined == solo
    assert len(engine.batch_sizes) > 1, "requests should have joined and left a running batch"


def test_stop_tokens_and_budget(engine, prompts) -> None:
    tokens, _ = run(engine, prompts[0], GREEDY)
    stop_at = tokens[5]
    cut, finished = run(
        engine, prompts[0], SamplingParams(max_new_tokens=24, stop_token_ids=frozenset({stop_at}))
    )
    first = tokens.index(stop_at)
    assert cut == tokens[:first]
    assert finished == Finished("stop", first + 1)


def test_seeded_sampling_is_reproducible_even_in_a_batch(engine, prompts) -> None:
    params = SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    solo = run(engine, prompts[0], params)
    assert run(engine, prompts[0], params) == solo
    together = run_concurrently(engine, [prompts[0], prompts[1], prompts[0]], params)
    assert together[0] == together[2] == solo
    other = run(engine, prompts[0], SamplingParams(max_new_tokens=16, temperature=1.0, seed=8))
    assert other[0] != solo[0]


def test_cancelled_requests_leave_the_batch(engine, prompts) -> None:
    received: queue.SimpleQueue = queue.SimpleQueue()
    tickets = [engine.submit(p, SamplingParams(max_new_tokens=400), received.put) for p in prompts]
    assert wait_until(lambda: engine.active_count == len(prompts))
    tickets[0].cancel()
    assert wait_until(lambda: engine.active_count == len(prompts) - 1)
    for ticket in tickets[1:]:
        ticket.cancel()
    assert wait_until(lambda: engine.active_count == 0)


def test_a_full_queue_refuses_with_429(loaded, prompts) -> None:
    engine = GenerationEngine(loaded[0], max_batch_size=1, max_queue=1)
    try:
        running = engine.submit(prompts[0], SamplingParams(max_new_tokens=400), lambda event: None)
        assert wait_until(lambda: engine.active_count == 1)
        waiting = engine.submit(prompts[1], GREEDY, lambda event: None)
        with pytest.raises(QueueFullError) as raised:
            engine.submit(prompts[2], GREEDY, lambda event: None)
        assert raised.value.status_code == 429 and raised.value.retryable
        running.cancel()
        waiting.cancel()
        assert wait_until(lambda: engine.active_count == 0 and engine.waiting_count == 0)
    finally:
        engine.close()


def test_a_failing_sink_cancels_its_request(engine, prompts) -> None:
    def gone(event) -> None:
        raise RuntimeError("event loop closed")

    engine.submit(prompts[0], SamplingParams(max_new_tokens=400), gone)
    assert wait_until(lambda: engine.active_count == 0)


def test_close_fails_pending_requests(loaded, prompts) -> None:
    engine = GenerationEngine(loaded[0])
    events: queue.SimpleQueue = queue.SimpleQueue()
    engine.submit(prompts[0], SamplingParams(max_new_tokens=400), events.put)
    assert wait_until(lambda: engine.active_count == 1)
    engine.close()
    while not isinstance(event := events.get(timeout=10), Exception):
        pass
    assert "closed" in str(event)


def test_a_failing_prefill_fails_only_the_newcomer(engine, prompts) -> None:
    running: queue.SimpleQueue = queue.SimpleQueue()
    engine.submit(prompts[0], SamplingParams(max_new_tokens=200), running.put)
    assert wait_until(lambda: engine.active_count == 1)
    bad: queue.SimpleQueue = queue.SimpleQueue()
    engine.submit([10**7], GREEDY, bad.put)  # a token id outside the vocabulary
    assert isinstance(bad.get(timeout=10), UpstreamUnavailableError)
    while not isinstance(event := running.get(timeout=30), Finished):
        pass
    assert event == Finished("length", 200)


def _generate(model, prompt: list[int], tokens: int) -> list[int]:
    output = model.generate(
        torch.tensor([prompt]), max_new_tokens=tokens, do_sample=False, eos_token_id=None
    )
    return output[0, len(prompt) :].tolist()


def test_a_lone_requests_cache_serves_the_next_prompt_sharing_its_prefix(
    engine, loaded, prompts
) -> None:
    model = loaded[0]
    first, _ = run(engine, prompts[3], GREEDY)
    # the next turn of the conversation: the first prompt, its reply, then more
    follow_up = prompts[3] + first + prompts[0]
    before = engine.reused_prompt_tokens
    tokens, _ = run(engine, follow_up, GREEDY)
    # everything the first request evaluated (its last token was sampled, never fed back)
    assert engine.reused_prompt_tokens - before == len(prompts[3]) + len(first) - 1
    assert tokens == _generate(model, follow_up, 24)


def test_the_row_a_batch_leaves_last_keeps_its_cache(engine, loaded, prompts) -> None:
    results: list = [None, None]

    def one(row: int, prompt: list[int], budget: int) -> None:
        results[row] = run(engine, prompt, SamplingParams(max_new_tokens=budget))

    threads = [
        threading.Thread(target=one, args=(0, prompts[0], 4)),
        threading.Thread(target=one, args=(1, prompts[3], 30)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # the long row ran on alone, its left padding trimmed: its cache serves the next turn
    follow_up = prompts[3] + results[1][0] + prompts[2]
    before = engine.reused_prompt_tokens
    tokens, _ = run(engine, follow_up, GREEDY)
    assert engine.reused_prompt_tokens - before == len(prompts[3]) + 29
    assert tokens == _generate(loaded[0], follow_up, 24)


def test_prompt_cache_off_evaluates_every_prompt_whole(loaded, prompts) -> None:
    off = GenerationEngine(loaded[0], max_batch_size=8, max_queue=8, prompt_cache=False)
    try:
        first, _ = run(off, prompts[3], GREEDY)
        tokens, _ = run(off, prompts[3] + first, GREEDY)
        assert off.reused_prompt_tokens == 0
        assert tokens == _generate(loaded[0], prompts[3] + first, 24)
    finally:
        off.close()
