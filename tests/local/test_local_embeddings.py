"""LocalEmbeddings on a tiny random encoder: pooling, normalisation, batching, order, async."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from langchain_chatchat.embeddings.local import LocalEmbeddings
from langchain_chatchat.providers import get_provider
from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.types import EmbeddingRequest

TEXTS = ["hello", "the capital of france is paris", "", "a story about a cat", "weather"]


@pytest.fixture
def embeddings(tiny_encoder: str) -> LocalEmbeddings:
    return LocalEmbeddings(model=tiny_encoder, batch_size=2)


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_provider_registered() -> None:
    assert get_provider("huggingface").class_for("embeddings") is LocalEmbeddings


def test_batched_documents_keep_order_and_match_single_queries(embeddings) -> None:
    documents = embeddings.embed_documents(TEXTS)
    assert len(documents) == len(TEXTS)
    for text, vector in zip(TEXTS, documents, strict=True):
        assert vector == pytest.approx(embeddings.embed_query(text), abs=1e-5)
        assert _norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_pooling_and_normalisation_are_configurable(tiny_encoder) -> None:
    raw = LocalEmbeddings(model=tiny_encoder, normalize=False).embed_query("hello")
    cls = LocalEmbeddings(model=tiny_encoder, pooling="cls").embed_query("hello")
    mean = LocalEmbeddings(model=tiny_encoder).embed_query("hello")
    assert _norm(raw) != pytest.approx(1.0)
    assert [x / _norm(raw) for x in raw] == pytest.approx(mean, abs=1e-5)
    assert cls != pytest.approx(mean, abs=1e-3)


def test_usage_counts_real_tokens(embeddings) -> None:
    result = embeddings.worker.embed(EmbeddingRequest(model="m", texts=["hello", "hello weather"]))
    assert result.usage.input_tokens == 3 + 4  # [CLS] ... [SEP] each


def test_other_dimensions_are_refused(tiny_encoder) -> None:
    with pytest.raises(BadRequestError, match="32-dimensional"):
        LocalEmbeddings(model=tiny_encoder, dimensions=16).embed_query("hello")


async def test_async_matches_sync_and_keeps_order(embeddings) -> None:
    vectors = await embeddings.aembed_documents(TEXTS)
    for got, expected in zip(vectors, embeddings.embed_documents(TEXTS), strict=True):
        assert got == pytest.approx(expected, abs=1e-6)
    assert await embeddings.aembed_documents([]) == []


async def test_async_never_blocks_the_event_loop(embeddings, monkeypatch) -> None:
    real = embeddings.worker._embed_batch

    def slow(request):  # stands in for a long forward pass on a big batch
        time.sleep(0.2)
        return real(request)

    monkeypatch.setattr(embeddings.worker, "_embed_batch", slow)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    beat = asyncio.create_task(heartbeat())
    await embeddings.aembed_query("hello")
    beat.cancel()
    assert ticks >= 5
