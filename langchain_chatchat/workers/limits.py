"""Per-text input limits of embedding models, checked before any request is sent.

Providers document a limit per text in characters, in tokens, or both. Characters are checked
exactly. Tokens cannot be counted without the provider's tokenizer, so the check uses a
lower bound on the count — one token per `CHARS_PER_TOKEN` characters at most — which never
refuses a text the provider would take and catches the texts that are far too long; a text
between the estimate and the real limit still reaches the provider, whose answer is a typed
error too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_chatchat.workers.errors import ContextLengthError

CHARS_PER_TOKEN = 4
"""Tokenizers of these providers give about one token per 1-2 CJK characters or 3-4 Latin
characters; four characters per token bounds the count from below."""


@dataclass(frozen=True)
class TextLimit:
    """The most one text may hold: characters and/or tokens (None: not documented); and the
    most tokens one request may hold, all its texts together."""

    chars: int | None = None
    tokens: int | None = None
    request_tokens: int | None = None


def split_by_request_tokens(texts: Sequence[str], limit: TextLimit | None) -> list[list[str]]:
    """`texts` in order, in groups that fit `limit.request_tokens`.

    Counted by UTF-8 bytes, an upper bound on tokens for the byte-level tokenizers these
    providers use (every token covers at least one byte), so a group never exceeds the limit;
    a single text larger than that bound goes alone (its own per-text limit is checked apart).
    """
    budget = limit.request_tokens if limit is not None else None
    if budget is None:
        return [list(texts)]
    groups: list[list[str]] = []
    current: list[str] = []
    used = 0
    for text in texts:
        size = len(text.encode())
        if current and used + size > budget:
            groups.append(current)
            current, used = [], 0
        current.append(text)
        used += size
    return [*groups, current] if current else groups


def check_texts(texts: Sequence[str], limit: TextLimit | None, model: str, provider: str) -> None:
    """Raise `ContextLengthError` naming the first text over `limit` and the limit it breaks."""
    if limit is None:
        return
    for index, text in enumerate(texts):
        if limit.chars is not None and len(text) > limit.chars:
            broken = f"{limit.chars} characters (it has {len(text)})"
        elif limit.tokens is not None and math.ceil(len(text) / CHARS_PER_TOKEN) > limit.tokens:
            broken = (
                f"{limit.tokens} tokens (it has at least {math.ceil(len(text) / CHARS_PER_TOKEN)})"
            )
        else:
            continue
        raise ContextLengthError(
            f"text {index} is too long for {model}: at most {broken}; split or shorten it",
            provider=provider,
            param=f"input[{index}]",
        )
