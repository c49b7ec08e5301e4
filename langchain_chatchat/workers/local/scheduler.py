"""Continuous batching, independent of the engine that runs the model.

One scheduler thread owns the model. Requests wait in a bounded queue; whenever the batch has
free slots, every waiting request (up to the free slots) is prefilled and joins the running batch
before the next decode step, so a request never waits for others to finish. Each sequence keeps
its own sampling state (`TokenSampler`), stop tokens and token budget; finished and cancelled
sequences leave the batch at the next step.

An engine subclass supplies four model operations — prefill new rows, decode one token for every
row, keep only some rows, forget everything — and knows nothing of queues, tickets or sampling.
Token ids go to each request's sink (a queue put, or a hop onto an event loop); the scheduler
knows nothing of text, templates or asyncio.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import weakref
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from langchain_chatchat.workers.errors import (
    ChatchatError,
    RateLimitError,
    UpstreamUnavailableError,
)
from langchain_chatchat.workers.local.sampling import SamplingParams, TokenSampler

logger = logging.getLogger(__name__)


class QueueFullError(RateLimitError):
    """The model has `max_queue` requests waiting already: HTTP 429, code `model_at_capacity`,
    the same error a served model's replica pool gives when its own queue is full."""

    def __init__(self, message: str, **kwargs) -> None:
        kwargs.setdefault("code", "model_at_capacity")
        kwargs.setdefault("provider", "local")
        kwargs.setdefault("retry_after", 1.0)
        super().__init__(message, **kwargs)


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


class _Sequence:
    __slots__ = ("done", "generated", "next_token", "sampler", "ticket")

    def __init__(self, ticket: Ticket) -> None:
        self.ticket = ticket
        self.sampler = TokenSampler(ticket.params, ticket.prompt)
        self.generated = 0
        self.next_token = 0
        self.done = False

    @property
    def live(self) -> bool:
        return not (self.done or self.ticket.cancelled)

    def deliver(self, event: Event) -> None:
        _deliver(self.ticket, event)


def _deliver(ticket: Ticket, event: Event) -> None:
    try:
        ticket.sink(event)
    except Exception:  # the consumer is gone (closed event loop, ...): stop working for it
        ticket.cancel()


def failure(error: Exception) -> ChatchatError:
    """A model error as the typed error its requests receive."""
    if isinstance(error, ChatchatError):
        return error
    return UpstreamUnavailableError(f"local generation failed: {error}", provider="local")


class BatchScheduler(ABC):
    """Runs all generation for one model on a scheduler thread, batching concurrent requests."""

    def __init__(self, *, max_batch_size: int, max_queue: int, label: str) -> None:
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be at least 1")
        self.max_batch_size = max_batch_size
        self.label = label
        self.batch_sizes: Counter[int] = Counter()
        """How many decode steps ran at each batch size (observability and tests)."""
        self.reused_prompt_tokens = 0
        """Prompt tokens taken from a cached prefix instead of evaluated (observability, tests)."""
        self._queue: queue.Queue[Ticket | None] = queue.Queue(maxsize=max_queue)
        self._sequences: list[_Sequence] = []
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the scheduler thread (subclasses call this once their model is ready)."""
        self._thread = threading.Thread(
            target=self._run, name=f"chatchat-{self.label}", daemon=True
        )
        self._thread.start()
        _LIVE.add(self)

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
                f"The model '{self.label}' is at capacity ({self.active_count} requests in "
                f"progress, {self._queue.maxsize} waiting); retry shortly."
            ) from None
        return ticket

    @property
    def active_count(self) -> int:
        return len(self._sequences)

    @property
    def waiting_count(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the scheduler; requests still running or waiting get an error."""
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._release()

    # -- what an engine supplies ---------------------------------------------------------
    @abstractmethod
    def _free_slots(self) -> int:
        """How many new sequences may join the running batch now."""

    @abstractmethod
    def _prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        """Run the prompts, append them as new rows; the logits [n, vocab] after each."""

    @abstractmethod
    def _decode(self, tokens: list[int]) -> torch.Tensor:
        """Feed one token to every row; the logits [rows, vocab] that follow."""

    @abstractmethod
    def _keep(self, rows: list[int]) -> None:
        """Keep only these rows (ascending; none means the batch is empty)."""

    def _release(self) -> None:  # noqa: B027 - engines without native resources free nothing
        """Free the engine's native resources once the thread has stopped."""

    def _thread_context(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    # -- scheduler thread ----------------------------------------------------------------
    def _run(self) -> None:
        with self._thread_context():
            while not self._closed:
                tickets = self._take()
                if tickets is None:
                    break
                try:
                    if tickets:
                        self._admit(tickets)
                    if self._sequences:
                        self._step()
                except Exception as error:  # a failed step fails its requests, not the engine
                    logger.exception("local generation step failed")
                    self._fail_all(failure(error))
        self._fail_all(
            UpstreamUnavailableError("the local model engine was closed", provider="local")
        )

    def _take(self) -> list[Ticket] | None:
        """Waiting requests that fit the batch now; blocks only while idle; None once closed."""
        idle = not self._sequences
        free = self._free_slots()
        tickets: list[Ticket] = []
        while len(tickets) < free:
            try:
                ticket = self._queue.get(block=idle and not tickets)
            except queue.Empty:
                break
            if ticket is None:
                return None
            if not ticket.cancelled:
                tickets.append(ticket)
        return tickets

    def _admit(self, tickets: list[Ticket]) -> None:
        """Prefill new requests together and merge them into the batch."""
        try:
            logits = self._prefill([ticket.prompt for ticket in tickets])
        except Exception as error:  # fails only the newcomers, not the running batch
            logger.exception("local prefill failed")
            for ticket in tickets:
                _deliver(ticket, failure(error))
            return
        sequences = [_Sequence(ticket) for ticket in tickets]
        self._sequences += sequences
        _choose(sequences, logits)
        _emit(sequences)
        self._prune()

    def _step(self) -> None:
        self._prune()  # requests cancelled since the last step
        if not self._sequences:
            return
        logits = self._decode([sequence.next_token for sequence in self._sequences])
        self.batch_sizes[len(self._sequences)] += 1
        _choose(self._sequences, logits)
        _emit(self._sequences)
        self._prune()

    def _prune(self) -> None:
        rows = [row for row, sequence in enumerate(self._sequences) if sequence.live]
        if len(rows) < len(self._sequences):
            self._keep(rows)
            self._sequences = [self._sequences[row] for row in rows]

    def _fail_all(self, error: ChatchatError) -> None:
        sequences, self._sequences = self._sequences, []
        with contextlib.suppress(Exception):
            self._keep([])
        for sequence in sequences:
            sequence.deliver(error)
        if self._closed:
            while True:
                try:
                    ticket = self._queue.get_nowait()
                except queue.Empty:
                    break
                if ticket is not None:
                    _deliver(ticket, error)


_LIVE: weakref.WeakSet[BatchScheduler] = weakref.WeakSet()


@atexit.register
def _close_live_engines() -> None:
    # a daemon thread killed in the middle of a native op aborts the interpreter at exit
    for engine in list(_LIVE):
        engine.close(timeout=5.0)


def shared_prefix(held: list[int], prompt: list[int]) -> int:
    """How many leading tokens a cache holding `held` can give `prompt`: their common prefix,
    short of the prompt's last token (its logits choose the first new token)."""
    shared = 0
    for a, b in zip(held, prompt[:-1], strict=False):
        if a != b:
            break
        shared += 1
    return shared


def _choose(sequences: list[_Sequence], logits: torch.Tensor) -> None:
    """Each row's next token: one argmax for all plain-greedy rows, its sampler for the others."""
    greedy = logits.argmax(-1).tolist()
    for row, sequence in enumerate(sequences):
        if sequence.ticket.params.plain_greedy:
            token = greedy[row]
        else:
            token = sequence.sampler.choose(logits[row])
        sequence.sampler.record(token)
        sequence.next_token = token


def _emit(sequences: list[_Sequence]) -> None:
    """Send each live row its new token, or its end when it hit a stop token or its budget."""
    for sequence in sequences:
        if sequence.ticket.cancelled:
            continue
        token = sequence.next_token
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
