"""QwenEmbeddings against the emulator: batching to the model's limit, order, text types."""

from __future__ import annotations

import pytest

from langchain_chatchat import BadRequestError, QwenEmbeddings
from langchain_chatchat.testing import Fault

TEXTS = [f"document number {i} about topic {i % 3}" for i in range(23)]


def _texts_per_request(emulator) -> list[int]:
    return [len(r.body["input"]["texts"]) for r in emulator.requests]


def test_documents_are_batched_to_the_v3_limit_in_order(embeddings, emulator):
    vectors = embeddings.embed_documents(TEXTS)
    assert _texts_per_request(emulator) == [10, 10, 3]
    assert {r.body["parameters"]["text_type"] for r in emulator.requests} == {"document"}
    singles = [embeddings.embed_documents([text])[0] for text in (TEXTS[0], TEXTS[15], TEXTS[22])]
    assert [vectors[0], vectors[15], vectors[22]] == singles


def test_v2_uses_its_larger_limit_and_batch_size_is_capped(emulator):
    v2 = QwenEmbeddings(
        model="text-embedding-v2", api_key=emulator.api_key, base_url=emulator.base_url
    )
    v2.embed_documents(TEXTS)
    assert _texts_per_request(emulator) == [23]
    emulator.reset()
    capped = QwenEmbeddings(
        model="text-embedding-v3",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        batch_size=100,
    )
    capped.embed_documents(TEXTS)
    assert _texts_per_request(emulator) == [10, 10, 3]


def test_query_uses_query_text_type_and_dimensions(emulator):
    small = QwenEmbeddings(
        model="text-embedding-v3",
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        dimensions=512,
    )
    vector = small.embed_query("what is langchain?")
    assert len(vector) == 512
    params = emulator.requests[-1].body["parameters"]
    assert params["text_type"] == "query" and params["dimension"] == 512


async def test_async_embeddings_keep_order(embeddings, emulator):
    vectors = await embeddings.aembed_documents(TEXTS)
    assert len(vectors) == 23 and sorted(_texts_per_request(emulator)) == [3, 10, 10]
    assert vectors == embeddings.embed_documents(TEXTS)
    query = await embeddings.aembed_query("hello")
    assert query == embeddings.embed_query("hello")


def test_empty_input_makes_no_request(embeddings, emulator):
    assert embeddings.embed_documents([]) == []
    assert emulator.requests == []


def test_errors_are_typed(embeddings, emulator):
    emulator.enqueue(Fault.http(400, "InvalidParameter", "dimension is invalid"))
    with pytest.raises(BadRequestError):
        embeddings.embed_query("x")
