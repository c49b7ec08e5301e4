"""GeminiEmbeddings against GeminiEmulator: order, batching, task types, dimensions, errors."""

from __future__ import annotations

import pytest

from langchain_chatchat import BadRequestError, GeminiEmbeddings, RateLimitError
from langchain_chatchat.testing import Fault
from langchain_chatchat.testing.responder import embed_text


def test_documents_keep_order_across_batches(embeddings, emulator):
    texts = [f"text number {i}" for i in range(230)]
    vectors = embeddings.embed_documents(texts)
    assert vectors == [embed_text(t, 3072) for t in texts]
    batches = [len(r.body["requests"]) for r in emulator.requests]
    assert batches == [100, 100, 30]
    first = emulator.requests[0].body["requests"][0]
    assert first["taskType"] == "RETRIEVAL_DOCUMENT"
    assert first["model"] == "models/gemini-embedding-001"


async def test_async_batches_keep_order(embeddings, emulator):
    texts = [f"t{i}" for i in range(150)]
    assert await embeddings.aembed_documents(texts) == [embed_text(t, 3072) for t in texts]
    assert sorted(len(r.body["requests"]) for r in emulator.requests) == [50, 100]
    await embeddings.worker.aclose()


def test_query_task_type_and_dimensions(emulator):
    embeddings = GeminiEmbeddings(
        api_key=emulator.api_key, base_url=emulator.base_url, dimensions=128
    )
    vector = embeddings.embed_query("where?")
    assert len(vector) == 128
    request = emulator.requests[-1].body["requests"][0]
    assert request["taskType"] == "RETRIEVAL_QUERY" and request["outputDimensionality"] == 128


def test_batch_size_is_capped_at_the_api_limit(emulator):
    embeddings = GeminiEmbeddings(
        api_key=emulator.api_key, base_url=emulator.base_url, batch_size=500
    )
    embeddings.embed_documents(["x"] * 120)
    assert [len(r.body["requests"]) for r in emulator.requests] == [100, 20]


def test_errors_are_typed(embeddings, emulator):
    emulator.enqueue(*[Fault.http(429, "RESOURCE_EXHAUSTED", "Quota exceeded.")] * 3)
    with pytest.raises(RateLimitError):
        embeddings.embed_documents(["a"])
    too_big = GeminiEmbeddings(
        model="text-embedding-004",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        dimensions=1024,
    )
    with pytest.raises(BadRequestError, match="output_dimensionality"):
        too_big.embed_query("x")
