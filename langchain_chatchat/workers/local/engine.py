"""The transformers engine: continuous batching over one shared KV cache.

New requests are prefilled together, left-padded, and merged into the running batch (the cache
re-padded on the left); rows that leave are dropped and cache columns that only padding still
uses are trimmed. Models whose cache has sliding-window layers cannot be re-padded; for them new
requests join when the batch drains. Every tensor lives on the model's device.

When a request that ran alone finishes, its cache is kept; a next request arriving to an idle
engine and sharing its prefix (the chat template's system prompt, a conversation's earlier turns)
continues that cache and evaluates only the rest of its prompt.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from langchain_chatchat.workers.local.sampling import SamplingParams
from langchain_chatchat.workers.local.scheduler import (
    BatchScheduler,
    Event,
    Finished,
    QueueFullError,
    Sink,
    Ticket,
    shared_prefix,
)

__all__ = [
    "Event",
    "Finished",
    "GenerationEngine",
    "QueueFullError",
    "SamplingParams",
    "Sink",
    "Ticket",
]


class _Cache:
    """Rows decoding together: a shared KV cache, its padding mask and each row's position."""

    def __init__(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        self.cache = cache
        self.mask = mask  # [B, T] 1 for real tokens, 0 for left padding
        self.positions = mask.sum(-1)  # [B] position id of each row's next input token

    @property
    def resizable(self) -> bool:
        """Whether the cache can be re-padded and trimmed (only full-attention layers can)."""
        return all(type(layer) is DynamicLayer for layer in self.cache.layers)

    def extend(self, other: _Cache) -> None:
        """Append `other`'s rows, left-padding whichever cache is shorter."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, width, -1), _pad_left(other.mask, width, -1)])
        for (mine, keys, values), (_, their_keys, their_values) in zip(
            _filled_layers(self.cache), _filled_layers(other.cache), strict=True
        ):
            mine.keys = torch.cat([_pad_left(keys, width, -2), _pad_left(their_keys, width, -2)])
            mine.values = torch.cat(
                [_pad_left(values, width, -2), _pad_left(their_values, width, -2)]
            )
        self.positions = torch.cat([self.positions, other.positions])

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows`, then drop cache columns that are padding in every kept row."""
        index = torch.tensor(rows, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions = self.mask[index], self.positions[index]
        if not self.resizable:
            return
        start = int(self.mask.any(0).int().argmax())
        if start:
            self.mask = self.mask[:, start:]
            for layer, keys, values in _filled_layers(self.cache):
                layer.keys, layer.values = keys[:, :, start:], values[:, :, start:]


def _filled_layers(cache: DynamicCache) -> list[tuple[DynamicLayer, torch.Tensor, torch.Tensor]]:
    """Each layer with its keys and values: only a prefilled, resizable cache is re-padded."""
    filled = []
    for layer in cache.layers:
        if not isinstance(layer, DynamicLayer) or layer.keys is None or layer.values is None:
            raise TypeError(
                f"cannot re-pad KV cache layer {type(layer).__name__}: not a filled DynamicLayer"
            )
        filled.append((layer, layer.keys, layer.values))
    return filled


def _pad_left(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Zero-pad `dim` on the left to `width` (zeros are masked out, so their value is moot)."""
    missing = width - tensor.shape[dim]
    if not missing:
        return tensor
    padding = [0, 0] * (-dim - 1) + [missing, 0]
    return F.pad(tensor, padding)


class GenerationEngine(BatchScheduler):
    """Runs a transformers causal LM on a scheduler thread, batching concurrent requests."""

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        max_batch_size: int = 8,
        max_queue: int = 64,
        label: str = "local",
        prompt_cache: bool = True,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, max_queue=max_queue, label=label)
        self.model = model
        self.device = model.device
        self.prompt_cache = prompt_cache
        self._cache: _Cache | None = None
        self._tokens: list[list[int]] = []  # the tokens each row's cache holds
        self._idle: tuple[list[int], DynamicCache] | None = None
        """The last lone request's tokens and cache, kept for a next prompt sharing its prefix."""
        # transformers >= 5 names the cache argument and output `cache`, earlier versions
        # `past_key_values` (still accepted by 5.x, with a warning on every call)
        self._cache_name = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )
        self.start()

    def _thread_context(self):
        return torch.inference_mode()

    def _free_slots(self) -> int:
        if self._cache is None:
            return self.max_batch_size
        if not self._cache.resizable:
            return 0
        return self.max_batch_size - self.active_count

    def _prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        idle, self._idle = self._idle, None
        if idle is not None and self._cache is None and len(prompts) == 1:
            logits = self._resume(*idle, prompts[0])
            if logits is not None:
                return logits
        idle = None  # freed before the new rows' cache is allocated
        width = max(len(prompt) for prompt in prompts)
        input_ids = torch.zeros((len(prompts), width), dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        output = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
            logits_to_keep=1,
        )
        group = _Cache(getattr(output, self._cache_name), mask)
        if self._cache is None:
            self._cache = group
        else:
            self._cache.extend(group)
        self._tokens += [list(prompt) for prompt in prompts]
        return output.logits[:, -1]

    def _resume(
        self, held: list[int], cache: DynamicCache, prompt: list[int]
    ) -> torch.Tensor | None:
        """Continue a kept cache with the part of `prompt` it does not hold; None when it shares
        nothing with the prompt."""
        shared = shared_prefix(held, prompt)
        if not shared:
            return None
        for layer, keys, values in _filled_layers(cache):
            layer.keys, layer.values = keys[:, :, :shared], values[:, :, :shared]
        mask = torch.ones((1, len(prompt)), dtype=torch.long, device=self.device)
        output = self.model(
            input_ids=torch.tensor([prompt[shared:]], device=self.device),
            attention_mask=mask,
            position_ids=torch.arange(shared, len(prompt), device=self.device)[None],
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_name: cache},
        )
        self._cache = _Cache(getattr(output, self._cache_name), mask)
        self._tokens = [list(prompt)]
        self.reused_prompt_tokens += shared
        return output.logits[:, -1]

    def _decode(self, tokens: list[int]) -> torch.Tensor:
        state = self._cache
        assert state is not None
        state.mask = F.pad(state.mask, (0, 1), value=1)
        output = self.model(
            input_ids=torch.tensor(tokens, device=self.device)[:, None],
            attention_mask=state.mask,
            position_ids=state.positions[:, None],
            use_cache=True,
            **{self._cache_name: state.cache},
        )
        state.positions = state.positions + 1
        for held, token in zip(self._tokens, tokens, strict=True):
            held.append(token)
        return output.logits[:, -1]

    def _keep(self, rows: list[int]) -> None:
        if not rows:
            state, tokens = self._cache, self._tokens
            if (
                self.prompt_cache
                and state is not None
                and len(tokens) == 1
                and state.resizable
                and state.mask.shape[1] == len(tokens[0])  # no padding column left
            ):
                self._idle = (tokens[0], state.cache)
            self._cache, self._tokens = None, []
        elif self._cache is not None:
            self._cache.keep(rows)
            self._tokens = [self._tokens[row] for row in rows]
