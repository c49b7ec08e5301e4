"""Dynamic batching for one causal LM: FastChat's ModelWorker loop, without its global lock.

One scheduler thread owns the model. Requests wait in a bounded queue; the scheduler runs
decode steps over a batch of sequences sharing one KV cache. Policy:

- Admission: whenever the batch has free slots, every waiting request (up to the free slots) is
  prefilled together, left-padded, and merged into the running batch before the next decode
  step — so a request never waits for others to finish (continuous batching). Models whose cache
  has sliding-window layers cannot be re-padded; for them new requests join when the batch drains.
- Each sequence keeps its own sampling parameters (greedy at temperature 0, temperature / top-p
  sampling with its own seeded generator, so a seed reproduces regardless of batch company),
  stop tokens and token budget. Finished and cancelled sequences leave the batch at the next
  step, and cache columns that only padding still uses are trimmed.
- Token ids go to each request's sink (a queue put, or a hop onto an event loop); the engine
  knows nothing of text, templates or asyncio.
"""

from __future__ import annotations

import atexit
import logging
import queue
import random
import threading
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from langchain_chatchat.workers.errors import (
    ChatchatError,
    RateLimitError,
    UpstreamUnavailableError,
)

logger = logging.getLogger(__name__)


class QueueFullError(RateLimitError):
    """The local model's request queue is full; surfaces as HTTP 429."""

    def __init__(self, message: str, **kwargs) -> None:
        kwargs.setdefault("code", "queue_full")
        kwargs.setdefault("provider", "local")
        super().__init__(message, **kwargs)


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop_token_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Finished:
    """The last event of a request that ran to its end."""

    reason: Literal["stop", "length"]
    output_tokens: int
    """Tokens generated, the stop token included."""


Event = int | Finished | ChatchatError
Sink = Callable[[Event], None]


class Ticket:
    """A submitted request; `cancel()` makes the scheduler drop it at its next step."""

    __slots__ = ("cancelled", "params", "prompt", "sink")

    def __init__(self, prompt: list[int], params: SamplingParams, sink: Sink) -> None:
        self.prompt = prompt
        self.params = params
        self.sink = sink
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class _Sequence:
    ticket: Ticket
    generator: torch.Generator | None
    generated: int = 0
    done: bool = False

    @classmethod
    def start(cls, ticket: Ticket) -> _Sequence:
        params = ticket.params
        if params.temperature <= 0:
            return cls(ticket, None)
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        return cls(ticket, torch.Generator().manual_seed(seed))

    def deliver(self, event: Event) -> None:
        _deliver(self.ticket, event)


def _deliver(ticket: Ticket, event: Event) -> None:
    try:
        ticket.sink(event)
    except Exception:  # the consumer is gone (closed event loop, ...): stop working for it
        ticket.cancel()


@dataclass
class _Batch:
    """Sequences decoding together: a shared KV cache, its padding mask, per-row state."""

    cache: DynamicCache
    mask: torch.Tensor  # [B, T] 1 for real tokens, 0 for left padding
    positions: torch.Tensor  # [B] position id of each row's next input token
    tokens: torch.Tensor  # [B] each row's next input token
    sequences: list[_Sequence] = field(default_factory=list)

    @property
    def resizable(self) -> bool:
        """Whether the cache can be re-padded and trimmed (only full-attention layers can)."""
        return all(type(layer) is DynamicLayer for layer in self.cache.layers)

    def extend(self, other: _Batch) -> None:
        """Append `other`'s rows, left-padding whichever cache is shorter."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, width, -1), _pad_left(other.mask, width, -1)])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat(
                [_pad_left(mine.keys, width, -2), _pad_left(theirs.keys, width, -2)]
            )
            mine.values = torch.cat(
                [_pad_left(mine.values, width, -2), _pad_left(theirs.values, width, -2)]
            )
        self.positions = torch.cat([self.positions, other.positions])
        self.tokens = torch.cat([self.tokens, other.tokens])
        self.sequences += other.sequences

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows`, then drop cache columns that are padding in every kept row."""
        index = torch.tensor(rows)
        self.cache.batch_select_indices(index)
        self.mask, self.positions, self.tokens = (
            self.mask[index],
            self.positions[index],
            self.tokens[index],
        )
        self.sequences = [self.sequences[row] for row in rows]
        if not self.resizable:
            return
        start = int(self.mask.any(0).int().argmax())
        if start:
            self.mask = self.mask[:, start:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]


def _failure(error: Exception) -> ChatchatError:
    return UpstreamUnavailableError(f"local generation failed: {error}", provider="local")


def _pad_left(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Zero-pad `dim` on the left to `width` (zeros are masked out, so their value is moot)."""
    missing = width - tensor.shape[dim]
    if not missing:
        return tensor
    padding = [0, 0] * (-dim - 1) + [missing, 0]
    return F.pad(tensor, padding)


class GenerationEngine:
    """Runs all generation for one model on a scheduler thread, batching concurrent requests."""

    def __init__(
        self, model: PreTrainedModel, *, max_batch_size: int = 8, max_queue: int = 64
    ) -> None:
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be at least 1")
        self.model = model
        self.max_batch_size = max_batch_size
        self.batch_sizes: Counter[int] = Counter()
        """How many decode steps ran at each batch size (observability and tests)."""
        self._queue: queue.Queue[Ticket | None] = queue.Queue(maxsize=max_queue)
        self._batch: _Batch | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="chatchat-local-engine", daemon=True)
        self._thread.start()
        _LIVE_ENGINES.add(self)

    # -- caller side ---------------------------------------------------------------------
    def submit(self, prompt: list[int], params: SamplingParams, sink: Sink) -> Ticket:
        """Queue a request; its events go to `sink` from the scheduler thread."""
        if self._closed:
            raise UpstreamUnavailableError("the local model engine is closed", provider="local")
        ticket = Ticket(prompt, params, sink)
        try:
            self._queue.put_nowait(ticket)
        except queue.Full:
            raise QueueFullError(
                f"the local model's queue is full ({self._queue.maxsize} requests waiting); "
                "retry later",
                retry_after=1.0,
            ) from None
        return ticket

    @property
    def active_count(self) -> int:
        batch = self._batch
        return len(batch.sequences) if batch else 0

    @property
    def waiting_count(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the scheduler; requests still running or waiting get an error."""
        self._closed = True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    # -- scheduler thread ----------------------------------------------------------------
    def _run(self) -> None:
        with torch.inference_mode():
            while not self._closed:
                tickets = self._take()
                if tickets is None:
                    break
                try:
                    if tickets:
                        self._admit(tickets)
                    if self._batch is not None:
                        self._step()
                except Exception as error:  # a failed step fails its requests, not the engine
                    logger.exception("local generation step failed")
                    self._fail_all(_failure(error))
        self._fail_all(
            UpstreamUnavailableError("the local model engine was closed", provider="local")
        )

    def _take(self) -> list[Ticket] | None:
        """Waiting requests that fit the batch now; blocks only while idle; None once closed."""
        batch = self._batch
        if batch is None:
            free = self.max_batch_size
        elif batch.resizable:
            free = self.max_batch_size - len(batch.sequences)
        else:
            free = 0
        tickets: list[Ticket] = []
        while len(tickets) < free:
            try:
                ticket = self._queue.get(block=batch is None and not tickets)
            except queue.Empty:
                break
            if ticket is None:
                return None
            if not ticket.cancelled:
                tickets.append(ticket)
        return tickets

    def _admit(self, tickets: list[Ticket]) -> None:
        """Prefill new requests together (left-padded) and merge them into the batch."""
        width = max(len(ticket.prompt) for ticket in tickets)
        input_ids = torch.zeros((len(tickets), width), dtype=torch.long)
        mask = torch.zeros((len(tickets), width), dtype=torch.long)
        for row, ticket in enumerate(tickets):
            input_ids[row, width - len(ticket.prompt) :] = torch.tensor(ticket.prompt)
            mask[row, width - len(ticket.prompt) :] = 1
        try:
            output = self.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                use_cache=True,
                logits_to_keep=1,
            )
        except Exception as error:  # fails only the newcomers, not the running batch
            logger.exception("local prefill failed")
            failure = _failure(error)
            for ticket in tickets:
                _deliver(ticket, failure)
            return
        sequences = [_Sequence.start(ticket) for ticket in tickets]
        group = _Batch(
            cache=output.past_key_values,
            mask=mask,
            positions=mask.sum(-1),
            tokens=_sample(sequences, output.logits[:, -1]),
            sequences=sequences,
        )
        _emit(group)
        if self._batch is None:
            self._batch = group
        else:
            self._batch.extend(group)
        self._prune()

    def _step(self) -> None:
        self._prune()  # requests cancelled since the last step
        batch = self._batch
        if batch is None:
            return
        batch.mask = F.pad(batch.mask, (0, 1), value=1)
        output = self.model(
            input_ids=batch.tokens[:, None],
            attention_mask=batch.mask,
            position_ids=batch.positions[:, None],
            past_key_values=batch.cache,
            use_cache=True,
        )
        self.batch_sizes[len(batch.sequences)] += 1
        batch.positions = batch.positions + 1
        batch.tokens = _sample(batch.sequences, output.logits[:, -1])
        _emit(batch)
        self._prune()

    def _prune(self) -> None:
        batch = self._batch
        if batch is None:
            return
        rows = [
            row for row, seq in enumerate(batch.sequences) if not (seq.done or seq.ticket.cancelled)
        ]
        if not rows:
            self._batch = None
        elif len(rows) < len(batch.sequences):
            batch.keep(rows)

    def _fail_all(self, error: ChatchatError) -> None:
        batch, self._batch = self._batch, None
        for sequence in batch.sequences if batch else []:
            sequence.deliver(error)
        if self._closed:
            while True:
                try:
                    ticket = self._queue.get_nowait()
                except queue.Empty:
                    break
                if ticket is not None:
                    _deliver(ticket, error)


_LIVE_ENGINES: weakref.WeakSet[GenerationEngine] = weakref.WeakSet()


@atexit.register
def _close_live_engines() -> None:
    # a daemon thread killed in the middle of a torch op aborts the interpreter at exit
    for engine in list(_LIVE_ENGINES):
        engine.close(timeout=5.0)


def _sample(sequences: list[_Sequence], logits: torch.Tensor) -> torch.Tensor:
    """Next token per row: argmax for greedy rows, seeded sampling for the others."""
    tokens = logits.argmax(-1)
    for row, sequence in enumerate(sequences):
        if sequence.generator is not None:
            tokens[row] = _sample_row(logits[row], sequence.ticket.params, sequence.generator)
    return tokens


def _sample_row(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator
) -> torch.Tensor:
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p >= 1.0:
        return torch.multinomial(probs, 1, generator=generator)[0]
    sorted_probs, order = probs.sort(descending=True)
    outside_nucleus = sorted_probs.cumsum(0) - sorted_probs > params.top_p
    sorted_probs[outside_nucleus] = 0.0
    return order[torch.multinomial(sorted_probs, 1, generator=generator)[0]]


def _emit(batch: _Batch) -> None:
    """Send each live row its new token, or its end when it hit a stop token or its budget."""
    for sequence, token in zip(batch.sequences, batch.tokens.tolist(), strict=True):
        if sequence.ticket.cancelled:
            continue
        sequence.generated += 1
        params = sequence.ticket.params
        if token in params.stop_token_ids:
            sequence.done = True
            sequence.deliver(Finished("stop", sequence.generated))
            continue
        sequence.deliver(token)
        if sequence.generated >= params.max_new_tokens:
            sequence.done = True
            sequence.deliver(Finished("length", sequence.generated))
