"""From generated token ids to text the caller may see, one token at a time.

Byte-level tokenizers split multi-byte characters across tokens, and stop sequences or markup
can straddle tokens too, so both stages hold back a tail until it is known to be complete.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

REPLACEMENT = "\ufffd"


class Decoder(Protocol):
    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens left out, broken UTF-8 shown as U+FFFD."""
        ...


class IncrementalDetokenizer:
    """Token ids in, text pieces out, never ending inside a UTF-8 character.

    Decodes a short window (the last emitted token onward) rather than the whole output, so
    each step costs the same however long the reply gets; the window keeps tokenizers that
    drop leading spaces on a lone token (SentencePiece) correct.
    """

    def __init__(self, decoder: Decoder) -> None:
        self._decoder = decoder
        self._ids: list[int] = []
        self._prefix = 0  # start of the decoding window
        self._read = 0  # end of what has been emitted

    def add(self, token: int) -> str:
        self._ids.append(token)
        seen, text = self._window()
        if len(text) > len(seen) and not text.endswith(REPLACEMENT):
            self._prefix, self._read = self._read, len(self._ids)
            return text[len(seen) :]
        return ""

    def flush(self) -> str:
        """Whatever is held back, incomplete characters included (the reply has ended)."""
        seen, text = self._window()
        self._prefix = self._read = len(self._ids)
        return text[len(seen) :]

    def _window(self) -> tuple[str, str]:
        decode = self._decoder.decode
        return decode(self._ids[self._prefix : self._read]), decode(self._ids[self._prefix :])


def partial_suffix(text: str, markers: Iterable[str]) -> int:
    """Length of the longest end of `text` that is the start (not all) of some marker."""
    longest = 0
    for marker in markers:
        for size in range(min(len(text), len(marker) - 1), longest, -1):
            if marker.startswith(text[-size:]):
                longest = size
                break
    return longest


class StopMatcher:
    """Cuts the text at the first stop sequence, holding back what may be the start of one."""

    def __init__(self, stops: Iterable[str] | None) -> None:
        self._stops = [stop for stop in stops or () if stop]
        self._pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        if not self._stops:
            return text
        text = self._pending + text
        hits = [index for index in (text.find(stop) for stop in self._stops) if index >= 0]
        if hits:
            self.stopped, self._pending = True, ""
            return text[: min(hits)]
        held = partial_suffix(text, self._stops)
        self._pending = text[len(text) - held :] if held else ""
        return text[: len(text) - held]

    def flush(self) -> str:
        """The held-back tail, which turned out not to be a stop sequence."""
        pending, self._pending = self._pending, ""
        return pending
