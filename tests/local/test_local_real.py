"""The shipped offline defaults, for real: SmolLM2-135M-Instruct (GGUF) and all-MiniLM-L6-v2.

Each model is loaded once per session. The first run on a machine de-quantises SmolLM2 into the
user cache (CHATCHAT_CACHE_DIR / XDG_CACHE_HOME); later runs load the cached safetensors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests

from langchain_chatchat.chat_models.local import ChatLocal, default_chat_model
from langchain_chatchat.embeddings.local import LocalEmbeddings, default_embeddings
from langchain_chatchat.workers.local import llama
from langchain_chatchat.workers.local.cache import cache_dir
from langchain_chatchat.workers.local.loading import MINILM, SMOLLM2

pytestmark = pytest.mark.real_model


ENGINES = [
    "transformers",
    pytest.param(
        "llama_cpp",
        marks=pytest.mark.skipif(not llama.available(), reason="llama-cpp-python not installed"),
    ),
]


@pytest.fixture(scope="session", params=ENGINES)
def smollm2(request: pytest.FixtureRequest) -> ChatLocal:
    return default_chat_model(engine=request.param, temperature=0, max_tokens=32)


@pytest.fixture(scope="session")
def minilm() -> LocalEmbeddings:
    return default_embeddings()


def test_smollm2_knows_the_capital_of_france(smollm2: ChatLocal) -> None:
    # (the 4-bit weights put the first tokens of "The", "L", "Le" within 0.4 logits of each
    # other after "What is the capital of France?" or "Which city is the capital of France?":
    # a batch shape tips them; here every greedy step leads by at least 1 logit)
    answer = smollm2.invoke("Name the capital of France.")
    assert "Paris" in answer.content
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.usage_metadata["output_tokens"] > 0


def test_smollm2_streams_the_same_answer(smollm2: ChatLocal) -> None:
    chunks = list(smollm2.stream("What is the capital of France?"))
    assert (
        "".join(chunk.content for chunk in chunks)
        == smollm2.invoke("What is the capital of France?").content
    )
    assert len(chunks) > 3


def test_smollm2_conversion_is_cached() -> None:
    default_chat_model(engine="transformers")
    converted = list(
        (cache_dir() / "models").glob(f"{Path(SMOLLM2.file()).stem}-*/model.safetensors")
    )
    assert converted, "the de-quantised model should be cached as safetensors"


def test_minilm_embeds_384_normalised_dimensions(minilm: LocalEmbeddings) -> None:
    vectors = minilm.embed_documents(
        ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell."]
    )
    assert [len(v) for v in vectors] == [384] * 3
    assert math.sqrt(sum(x * x for x in vectors[0])) == pytest.approx(1.0, abs=1e-5)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3


def test_minilm_matches_sentence_transformers(minilm: LocalEmbeddings) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(MINILM.file().parent), device="cpu")
    texts = ["hello world", "The quick brown fox jumps over the lazy dog."]
    expected = reference.encode(texts, normalize_embeddings=True).tolist()
    for got, want in zip(minilm.embed_documents(texts), expected, strict=True):
        assert got == pytest.approx(want, abs=1e-4)


class TestSmolLM2TransformersIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatLocal]:
        return ChatLocal

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": SMOLLM2.name, "max_tokens": 24, "engine": "transformers"}

    @property
    def has_tool_calling(self) -> bool:
        return False  # SmolLM2's chat template has no tools; ChatLocal refuses them clearly

    @property
    def has_structured_output(self) -> bool:
        return False  # structured output needs tool calling (local models have no JSON mode)

    @property
    def supports_model_override(self) -> bool:
        return False


class TestMiniLMIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[LocalEmbeddings]:
        return LocalEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MINILM.name}
