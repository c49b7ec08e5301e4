"""The llama.cpp engine on the shipped SmolLM2 GGUF, against llama-cpp-python's own generation."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests
from pydantic import ValidationError

from langchain_chatchat.chat_models.local import ChatLocal
from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.local import llama
from langchain_chatchat.workers.local.loading import SMOLLM2, ModelSource
from langchain_chatchat.workers.local.scheduler import QueueFullError

from .tiny_models import HERMES_TEMPLATE

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(not llama.available(), reason="llama-cpp-python not installed"),
]
QUESTION = "Name the capital of France."


@pytest.fixture(scope="module")
def chat() -> ChatLocal:
    model = ChatLocal(engine="llama_cpp", temperature=0, max_tokens=24)
    model.load()
    return model


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.01)
    return condition()


def test_greedy_matches_llama_cpp_python(chat: ChatLocal) -> None:
    local = chat.worker.load()
    assert local.engine_name.startswith("llama.cpp")
    prompt = local.codec.encode(
        local.codec.render(
            [{"role": "user", "content": QUESTION}], None, local.codec.template(None, None)
        )
    )
    reference = llama.load_gguf(Path(ModelSource.resolve(SMOLLM2.name).location) / SMOLLM2.file())
    expected = list(
        itertools.islice(reference.llama.generate(prompt, temp=0.0, top_k=1, reset=True), 5)
    )
    reply = chat.invoke(QUESTION, max_tokens=5)
    assert reply.content == local.codec.decode(expected)
    assert reply.content == "The capital of France is"
    assert reply.usage_metadata == {
        "input_tokens": len(prompt),
        "output_tokens": 5,
        "total_tokens": len(prompt) + 5,
    }
    assert reply.response_metadata["finish_reason"] == "length"


def test_stream_equals_invoke_and_stop_sequences_cut(chat: ChatLocal) -> None:
    chunks = list(chat.stream(QUESTION))
    assert len(chunks) > 3
    assert "".join(chunk.content for chunk in chunks) == chat.invoke(QUESTION).content
    stopped = chat.invoke(QUESTION, stop=["France"])
    assert stopped.content == "The capital of "
    assert stopped.response_metadata["finish_reason"] == "stop"


def test_seed_reproduces_sampling_and_penalties_apply(chat: ChatLocal) -> None:
    prompt = "Write a haiku about the sea."
    options: dict[str, Any] = {"temperature": 0.9, "top_k": 40, "min_p": 0.05, "max_tokens": 20}
    first = chat.invoke(prompt, seed=7, **options).content
    assert chat.invoke(prompt, seed=7, **options).content == first
    assert {chat.invoke(prompt, seed=seed, **options).content for seed in (1, 2, 3)} != {first}
    plain = chat.invoke(prompt, max_tokens=40).content
    penalised = chat.invoke(prompt, max_tokens=40, repetition_penalty=1.5).content
    assert plain != penalised
    with pytest.raises(BadRequestError, match="top_k"):
        chat.invoke(prompt, top_k=-1)
    with pytest.raises(BadRequestError, match="typical_p"):
        chat.invoke(prompt, typical_p=0.5)


def test_concurrent_requests_batch_and_cancel(chat: ChatLocal) -> None:
    engine = chat.worker.engine
    engine.batch_sizes.clear()
    prompts = [QUESTION, "Name a colour.", "Say hello.", "Count to five."]
    with ThreadPoolExecutor(len(prompts)) as pool:
        replies = list(pool.map(chat.invoke, prompts))
    assert all(reply.content for reply in replies)
    assert max(engine.batch_sizes) > 1, "concurrent requests should decode together"

    stream = chat.stream("Tell me a long story.", max_tokens=500)
    next(stream)
    assert engine.active_count == 1
    stream.close()  # the consumer leaves: the sequence leaves the batch
    assert wait_until(lambda: engine.active_count == 0)


async def test_async_cancellation_stops_generation(chat: ChatLocal) -> None:
    engine = chat.worker.engine

    async def consume() -> None:
        async for _ in chat.astream("Tell me a long story.", max_tokens=500):
            pass

    task = asyncio.create_task(consume())
    assert await asyncio.to_thread(wait_until, lambda: engine.active_count == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(wait_until, lambda: engine.active_count == 0)


def _generate(engine: llama.LlamaCppEngine, prompt: list[int], tokens: int) -> list[int]:
    """Greedy token ids straight from an engine, the stop token included."""
    events: list = []
    done = threading.Event()

    def sink(event) -> None:
        events.append(event)
        if not isinstance(event, int):
            done.set()

    engine.submit(prompt, _params(tokens), sink)
    assert done.wait(60)
    assert type(events[-1]).__name__ == "Finished", events[-1]
    return events[:-1]


def test_conversation_reuses_cached_prefix_and_answers_as_if_cold() -> None:
    # engines of their own (the shared one's cache holds other tests' batched prompts, and
    # llama.cpp's logits differ in the last bits between batch shapes)
    warm = ChatLocal(engine="llama_cpp", temperature=0, max_tokens=24, max_queue=7)
    cold = ChatLocal(engine="llama_cpp", temperature=0, max_tokens=24, prompt_cache=False)
    engine = warm.worker.load().engine
    assert cold.worker.load().engine is not engine
    first = warm.invoke(QUESTION)
    turns = [
        HumanMessage(QUESTION),
        AIMessage(first.content),
        HumanMessage("And now the capital of Germany."),
    ]
    second = warm.invoke(turns)
    # the system prompt, the first question and its answer come from the cache
    assert engine.reused_prompt_tokens >= first.usage_metadata["input_tokens"] + 5
    assert cold.invoke(turns).content == second.content == "The capital of Germany is Berlin."
    assert cold.invoke(turns).content == second.content
    assert cold.worker.load().engine.reused_prompt_tokens == 0


def test_concurrent_prompts_share_one_cached_system_prompt() -> None:
    from langchain_core.messages import SystemMessage

    system = SystemMessage(
        "You are a geography tutor. Answer in one short sentence, name the city, and do not add "
        "anything else. Be precise, be brief, and be polite to the student at all times."
    )
    questions = [f"Name the capital of {country}." for country in ("France", "Germany", "Italy")]
    shared = ChatLocal(engine="llama_cpp", temperature=0, max_tokens=12, max_queue=5)
    cold = ChatLocal(engine="llama_cpp", temperature=0, max_tokens=12, prompt_cache=False)
    engine = shared.worker.load().engine
    first = shared.invoke([system, HumanMessage("Hello.")])
    system_tokens = first.usage_metadata["input_tokens"] - 8  # the turn is a few tokens
    before = engine.reused_prompt_tokens
    with ThreadPoolExecutor(len(questions)) as pool:
        replies = list(pool.map(lambda q: shared.invoke([system, HumanMessage(q)]), questions))
    # every one of them took the system prompt from cells evaluated once, not only the one
    # that got the idle sequence holding it
    assert engine.reused_prompt_tokens - before >= len(questions) * system_tokens
    expected = [cold.invoke([system, HumanMessage(q)]).content for q in questions]
    assert [reply.content for reply in replies] == expected
    cities = ("Paris", "Berlin", "Rome")
    assert all(city in reply.content for city, reply in zip(cities, replies, strict=True))


def test_idle_cache_gives_way_to_new_prompts(chat: ChatLocal) -> None:
    """A context just big enough for one request: the idle cache of the previous, different
    prompt is given back instead of failing the next request for room."""
    gguf = llama.load_gguf(Path(ModelSource.resolve(SMOLLM2.name).location) / SMOLLM2.file())
    engine = llama.LlamaCppEngine(gguf, max_batch_size=2, kv_cells=256, label="small")
    try:
        for topic in ("Apples", "Bridges", "Clouds"):
            prompt = gguf.llama.tokenize(f"{topic} are interesting to talk about. ".encode() * 20)
            assert 128 < len(prompt) < 250
            assert _generate(engine, prompt, 4) == _generate(chat.worker.engine, prompt, 4)
        assert engine.reused_prompt_tokens == 0  # each prompt differs from the first token on
    finally:
        engine.close()


def test_forced_tool_call_is_parsed() -> None:
    chat = ChatLocal(
        engine="llama_cpp", temperature=0, max_tokens=40, chat_template=HERMES_TEMPLATE
    )

    def get_weather(city: str) -> str:
        """Weather in a city."""
        return "sunny"

    bound = chat.bind_tools([get_weather], tool_choice="get_weather")
    reply = bound.invoke("What is the weather in Paris?")
    # a 135M model fills the forced call with malformed JSON: it must surface as a call (valid
    # or invalid) named get_weather, never as text with markup
    calls = reply.tool_calls + reply.invalid_tool_calls
    assert [call["name"] for call in calls] == ["get_weather"]
    assert "<tool_call>" not in reply.content
    follow_up = [
        HumanMessage("What is the weather in Paris?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]),
        ToolMessage("sunny", tool_call_id="c1"),
    ]
    assert isinstance(chat.bind_tools([get_weather]).invoke(follow_up).content, str)
    with pytest.raises(BadRequestError, match="does not support tools"):
        ChatLocal(engine="llama_cpp").bind_tools([get_weather]).invoke("hi")


def test_queue_full_is_model_at_capacity() -> None:
    chat = ChatLocal(engine="llama_cpp", max_batch_size=1, max_queue=1, max_retries=0)
    engine = chat.worker.engine
    release = threading.Event()
    engine.submit([1, 2, 3], _params(500), lambda event: release.wait(5))  # occupies the slot
    assert wait_until(lambda: engine.active_count == 1)
    engine.submit([1, 2, 3], _params(1), lambda event: None)  # waits
    with pytest.raises(QueueFullError) as raised:
        chat.invoke("hi")
    assert raised.value.code == "model_at_capacity" and raised.value.status_code == 429
    release.set()
    engine.close()


def test_engine_choice_errors(tiny_chat_model: str) -> None:
    with pytest.raises(BadRequestError, match="runs GGUF files"):
        ChatLocal(model=tiny_chat_model, engine="llama_cpp", max_retries=0).invoke("hi")
    with pytest.raises(ValidationError, match="engine"):
        ChatLocal(model=tiny_chat_model, engine="vllm")  # type: ignore[arg-type]


def _params(tokens: int):
    from langchain_chatchat.workers.local.sampling import SamplingParams

    return SamplingParams(max_new_tokens=tokens)


class TestSmolLM2LlamaCppIntegration(ChatModelIntegrationTests):
    """The langchain-tests standard suite on the llama.cpp engine."""

    @property
    def chat_model_class(self) -> type[ChatLocal]:
        return ChatLocal

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": SMOLLM2.name, "max_tokens": 24, "engine": "llama_cpp"}

    @property
    def has_tool_calling(self) -> bool:
        return False  # SmolLM2's chat template has no tools; ChatLocal refuses them clearly

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False
