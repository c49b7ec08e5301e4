"""Incremental detokenisation and stop sequences, token by token."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from langchain_chatchat.workers.local.codec import HFCodec
from langchain_chatchat.workers.local.text import (
    REPLACEMENT,
    IncrementalDetokenizer,
    StopMatcher,
    partial_suffix,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_chat_model: str):
    return AutoTokenizer.from_pretrained(tiny_chat_model)


def test_multibyte_characters_are_never_split(tokenizer) -> None:
    text = "Héllo 世界 🎉 done"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split()), "the byte-level tokenizer should split these characters"
    detokenizer = IncrementalDetokenizer(HFCodec(tokenizer))
    pieces = [detokenizer.add(token) for token in ids]
    pieces.append(detokenizer.flush())
    assert "".join(pieces) == text
    assert not any(REPLACEMENT in piece for piece in pieces)
    assert "" in pieces, "some tokens must have been held back mid-character"


def test_flush_releases_an_incomplete_character(tokenizer) -> None:
    ids = tokenizer("🎉", add_special_tokens=False)["input_ids"]
    detokenizer = IncrementalDetokenizer(HFCodec(tokenizer))
    assert detokenizer.add(ids[0]) == ""
    assert detokenizer.flush() == tokenizer.decode(ids[:1])


def test_special_tokens_are_not_shown(tokenizer) -> None:
    detokenizer = IncrementalDetokenizer(HFCodec(tokenizer))
    ids = tokenizer("hi<|im_end|>", add_special_tokens=False)["input_ids"]
    assert "".join(detokenizer.add(token) for token in ids) + detokenizer.flush() == "hi"


def test_partial_suffix() -> None:
    assert partial_suffix("abc<tool", ["<tool_call>"]) == 5
    assert partial_suffix("abc", ["<tool_call>"]) == 0
    assert partial_suffix("x</", ["</s>", "END"]) == 2
    assert partial_suffix("<tool_call>", ["<tool_call>"]) == 0  # a whole marker is not partial


def test_stop_sequence_split_across_pieces() -> None:
    matcher = StopMatcher(["STOP"])
    out = [matcher.push(piece) for piece in ["Hello S", "T", "OP and more"]]
    assert "".join(out) == "Hello "
    assert matcher.stopped


def test_held_back_text_is_released_when_it_is_no_stop() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.push("a ST") == "a "
    assert matcher.push("ART") == "START"
    assert matcher.push("ST") == ""
    assert matcher.flush() == "ST"
    assert not matcher.stopped


def test_earliest_of_several_stops_wins() -> None:
    matcher = StopMatcher(["world", "lo"])
    assert matcher.push("hello world") == "hel"


def test_no_stops_pass_through() -> None:
    matcher = StopMatcher(None)
    assert matcher.push("anything") == "anything"
    assert matcher.flush() == ""
