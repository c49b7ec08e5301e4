"""The shared token sampler: penalties, top-k, min-p, seeds; and the request checks."""

from __future__ import annotations

import pytest
import torch

from langchain_chatchat.chat_models.local import ChatLocal
from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.local.sampling import SamplingParams, TokenSampler

LOGITS = torch.tensor([4.0, 3.0, 2.0, 1.0, -1.0])


def test_greedy_takes_the_argmax_and_penalties_change_it() -> None:
    assert TokenSampler(SamplingParams(max_new_tokens=1), []).choose(LOGITS) == 0
    repeated = TokenSampler(SamplingParams(max_new_tokens=1, repetition_penalty=2.0), [0])
    assert repeated.choose(LOGITS) == 1  # 4 / 2 < 3
    present = TokenSampler(SamplingParams(max_new_tokens=1, presence_penalty=1.5), [])
    present.record(0)
    assert present.choose(LOGITS) == 1  # 4 - 1.5 < 3
    frequent = TokenSampler(SamplingParams(max_new_tokens=1, frequency_penalty=0.6), [])
    frequent.record(0)
    assert frequent.choose(LOGITS) == 0  # one occurrence: 4 - 0.6 > 3
    frequent.record(0)
    assert frequent.choose(LOGITS) == 1  # two: 4 - 1.2 < 3
    negative = TokenSampler(SamplingParams(max_new_tokens=1, repetition_penalty=2.0), [4])
    assert negative._penalise(LOGITS.clone())[4] == -2.0  # negative logits are multiplied
    assert LOGITS[0] == 4.0, "the engine's logits are never modified"


def test_top_k_and_min_p_restrict_the_candidates() -> None:
    top2 = SamplingParams(max_new_tokens=1, temperature=5.0, top_k=2, seed=0)
    sampler = TokenSampler(top2, [])
    assert {sampler.choose(LOGITS) for _ in range(200)} == {0, 1}
    min_p = SamplingParams(max_new_tokens=1, temperature=1.0, min_p=0.3, seed=0)
    sampler = TokenSampler(min_p, [])
    assert {sampler.choose(LOGITS) for _ in range(200)} == {0, 1}  # e^-1 > 0.3 > e^-2


def test_a_seed_reproduces_a_sample() -> None:
    params = SamplingParams(max_new_tokens=1, temperature=1.0, top_p=0.9, seed=42)
    first = [TokenSampler(params, []).choose(LOGITS) for _ in range(20)]
    assert first == [TokenSampler(params, []).choose(LOGITS) for _ in range(20)]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("top_k", -1),
        ("top_k", 1.5),
        ("min_p", 2),
        ("repetition_penalty", 0),
        ("presence_penalty", 3),
        ("frequency_penalty", "a"),
    ],
)
def test_bad_sampling_options_are_a_400(tiny_chat_model: str, option: str, value) -> None:
    chat = ChatLocal(model=tiny_chat_model, max_retries=0)
    with pytest.raises(BadRequestError, match=option):
        chat.invoke("hi", **{option: value})


def test_sampling_options_work_through_the_chat_model(tiny_chat_model: str) -> None:
    chat = ChatLocal(model=tiny_chat_model, temperature=0, max_tokens=16)
    sampled = {"temperature": 1.0, "top_k": 5, "min_p": 0.01, "seed": 3}
    assert chat.invoke("Hello", **sampled).content == chat.invoke("Hello", **sampled).content
    with pytest.raises(BadRequestError, match="mirostat"):
        chat.invoke("Hello", mirostat=2)
    assert {"top_k", "min_p", "repetition_penalty"} <= ChatLocal.call_options
    operator_typo = ChatLocal(model=tiny_chat_model, model_kwargs={"top_kk": 3}, max_retries=0)
    with pytest.raises(BadRequestError, match="local models take no parameter 'top_kk'"):
        operator_typo.invoke("Hello")


def test_default_max_tokens_caps_a_reply(tiny_chat_model: str) -> None:
    capped = ChatLocal(model=tiny_chat_model, temperature=0, default_max_tokens=5)
    reply = capped.invoke("Hello")
    assert reply.usage_metadata["output_tokens"] <= 5
    assert capped.invoke("Hello", max_tokens=9).usage_metadata["output_tokens"] <= 9
