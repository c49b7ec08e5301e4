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
    """The most one text may hold: characters and/or tokens (None: not documented)."""

    chars: int | None = None
    tokens: int | None = None


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
