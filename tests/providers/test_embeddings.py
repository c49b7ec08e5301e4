"""Embeddings for every provider that offers them: batching to the provider's limit, order,
async, dimensions, and MiniMax's own request shape."""

from __future__ import annotations

import math

import pytest

from langchain_chatchat.testing import Fault
from langchain_chatchat.workers.errors import BadRequestError, RateLimitError

from .support import EMBEDDING_SPECS, embeddings_for, running, sent


@pytest.fixture(params=sorted(EMBEDDING_SPECS))
def name(request):
    emulator = running(request.param)
    emulator.reset()
    yield request.param
    emulator.reset()


def _inputs(body: dict) -> list[str]:
    return body.get("input") or body.get("texts")


def test_documents_are_batched_to_the_limit_and_keep_their_order(name):
    emb = embeddings_for(name)
    limit = emb.worker.batch_limit(emb.model)
    texts = [f"document number {i}" for i in range(min(limit, 20) * 2 + 1)]
    batch = min(limit, 20)
    emb = embeddings_for(name, batch_size=batch)
    vectors = emb.embed_documents(texts)
    emulator = running(name)
    assert len(emulator.requests) == math.ceil(len(texts) / batch)
    assert [t for r in emulator.requests for t in _inputs(r.body)] == texts
    assert all(len(_inputs(r.body)) <= limit for r in emulator.requests)
    assert vectors[7] == emb.embed_query(texts[7])


async def test_async_embeddings(name):
    emb = embeddings_for(name, batch_size=2)
    vectors = await emb.aembed_documents(["a b", "c d", "e f"])
    assert len(vectors) == 3 and vectors[0] != vectors[1]
    assert await emb.aembed_query("a b") == vectors[0]


def test_errors_are_typed(name):
    running(name).enqueue(
        Fault.http(
            429,
            {
                "minimax": "1002",
                "zhipu": "1302",
                "qianfan": "rpm_rate_limit_exceeded",
                "ark": "RateLimitExceeded",
            }.get(name, "rate_limit_exceeded"),
            "slow down",
        )
    )
    with pytest.raises(RateLimitError):
        embeddings_for(name).embed_query("hi")


def test_batch_limits_from_the_provider_docs():
    assert embeddings_for("qianfan").worker.batch_limit("embedding-v1") == 16
    assert embeddings_for("qianfan").worker.batch_limit("tao-8k") == 1
    assert embeddings_for("zhipu").worker.batch_limit("embedding-3") == 64
    assert embeddings_for("baichuan").worker.batch_limit("Baichuan-Text-Embedding") == 16


def test_oversized_batch_is_rejected_by_the_emulator_as_the_provider_would():
    emulator = running("qianfan")
    emulator.reset()
    emb = embeddings_for("qianfan", model="tao-8k")
    emb.embed_documents(["one", "two", "three"])
    assert [len(r.body["input"]) for r in emulator.requests] == [1, 1, 1]


def test_zhipu_dimensions():
    running("zhipu").reset()
    vector = embeddings_for("zhipu", dimensions=256).embed_query("你好")
    assert len(vector) == 256 and sent(running("zhipu"))["dimensions"] == 256


def test_minimax_types_and_group_id():
    emulator = running("minimax")
    emulator.reset()
    emb = embeddings_for("minimax")
    emb.embed_documents(["a"])
    emb.embed_query("b")
    assert [r.body["type"] for r in emulator.requests] == ["db", "query"]
    with pytest.raises(BadRequestError, match="GroupId"):
        embeddings_for("minimax", group_id=None).embed_query("c")
