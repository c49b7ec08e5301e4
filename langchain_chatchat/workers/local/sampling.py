"""Choosing the next token from logits: one implementation for every local engine.

Both engines hand their logits (a torch tensor, or a numpy array wrapped without a copy) to the
same `TokenSampler`, so a seed, a penalty or a top-k behaves the same whichever engine runs.
Greedy requests without penalties take a plain argmax and touch nothing else.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    """Keep only the k most likely tokens; 0 keeps all."""
    min_p: float = 0.0
    """Drop tokens less likely than `min_p` times the most likely one."""
    repetition_penalty: float = 1.0
    """transformers' penalty: logits of tokens already in the prompt or reply are divided by it
    (multiplied when negative); 1.0 is off."""
    presence_penalty: float = 0.0
    """OpenAI's: subtracted once from every token already in the reply."""
    frequency_penalty: float = 0.0
    """OpenAI's: subtracted per occurrence of a token in the reply."""
    seed: int | None = None
    stop_token_ids: frozenset[int] = frozenset()

    @property
    def penalised(self) -> bool:
        return (
            self.repetition_penalty != 1.0
            or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
        )

    @property
    def plain_greedy(self) -> bool:
        """Argmax over unmodified logits: what batched engines may compute for all rows at once."""
        return self.temperature <= 0 and not self.penalised


class TokenSampler:
    """One request's sampling state: its seeded generator and the tokens it has produced."""

    __slots__ = ("_counts", "_generator", "_prompt", "params")

    def __init__(self, params: SamplingParams, prompt: list[int]) -> None:
        self.params = params
        self._prompt = prompt if params.repetition_penalty != 1.0 else []
        self._counts: dict[int, int] = {}
        self._generator: torch.Generator | None = None
        if params.temperature > 0:
            seed = params.seed if params.seed is not None else random.getrandbits(63)
            self._generator = torch.Generator().manual_seed(seed)

    def record(self, token: int) -> None:
        if self.params.penalised:
            self._counts[token] = self._counts.get(token, 0) + 1

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from one row of logits (left unmodified, on any device).

        The row is copied to the CPU in float32 first: the generator lives there, so a seed
        gives the same tokens whichever device or dtype the model runs in.
        """
        logits = logits.detach().to("cpu", torch.float32, copy=True)
        if self.params.penalised:
            logits = self._penalise(logits)
        if self._generator is None:
            return int(logits.argmax())
        return self._sample(logits)

    def _penalise(self, logits: torch.Tensor) -> torch.Tensor:
        params = self.params
        if params.repetition_penalty != 1.0:
            seen = torch.tensor(sorted(set(self._prompt) | self._counts.keys()), dtype=torch.long)
            if len(seen):
                values = logits[seen]
                logits[seen] = torch.where(
                    values > 0,
                    values / params.repetition_penalty,
                    values * params.repetition_penalty,
                )
        if self._counts and (params.presence_penalty or params.frequency_penalty):
            ids = torch.tensor(list(self._counts), dtype=torch.long)
            counts = torch.tensor(list(self._counts.values()), dtype=logits.dtype)
            logits[ids] -= params.presence_penalty + params.frequency_penalty * counts
        return logits

    def _sample(self, logits: torch.Tensor) -> int:
        params = self.params
        if 0 < params.top_k < logits.shape[-1]:
            kth = torch.topk(logits, params.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.min_p > 0:
            probs = probs.masked_fill(probs < params.min_p * probs.max(), 0.0)
        if params.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            sorted_probs[sorted_probs.cumsum(0) - sorted_probs > params.top_p] = 0.0
            return int(order[torch.multinomial(sorted_probs, 1, generator=self._generator)[0]])
        return int(torch.multinomial(probs, 1, generator=self._generator)[0])
