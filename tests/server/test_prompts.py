"""workers.prompts.prompt_to_messages: legacy prompt strings → chat turns, system prompt kept."""

from __future__ import annotations

import pytest

from langchain_chatchat.workers.prompts import prompt_to_messages


def turns(prompt: str) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in prompt_to_messages(prompt)]


def test_plain_text_is_one_user_turn():
    assert turns("Tell me a joke") == [("user", "Tell me a joke")]


def test_fastchat_separator_template_keeps_system_and_every_turn():
    prompt = (
        "You are helpful.\n### user: hi\n### assistant: hello!\n### user: and now?\n### assistant:"
    )
    assert turns(prompt) == [
        ("system", "You are helpful."),
        ("user", "hi"),
        ("assistant", "hello!"),
        ("user", "and now?"),
    ]


def test_last_user_turn_is_kept_without_an_assistant_cue():
    # Chatchat 0.2's split(sep)[1:-1] dropped this turn.
    assert turns("### Human: first\n### Assistant: ok\n### Human: second") == [
        ("user", "first"),
        ("assistant", "ok"),
        ("user", "second"),
    ]


@pytest.mark.parametrize(
    "prompt",
    [
        "SYSTEM: Be brief.\nUSER: hi\nASSISTANT:",
        "System: Be brief.\n\nHuman: hi\n\nAssistant:",
        "Be brief.\n\nUSER: hi\nASSISTANT: ",
    ],
)
def test_role_prefixed_styles(prompt):
    assert turns(prompt) == [("system", "Be brief."), ("user", "hi")]


def test_chatml():
    prompt = (
        "<|im_start|>system\nYou are Qwen.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nhello<|im_end|>\n"
        "<|im_start|>user\nmore\nlines<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert turns(prompt) == [
        ("system", "You are Qwen."),
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "more\nlines"),
    ]


def test_a_started_assistant_turn_is_kept():
    assert turns("USER: write a poem\nASSISTANT: Roses are") == [
        ("user", "write a poem"),
        ("assistant", "Roses are"),
    ]


def test_role_words_inside_a_line_are_text():
    assert turns("USER: what does 'user: x' mean?\nASSISTANT:") == [
        ("user", "what does 'user: x' mean?")
    ]
