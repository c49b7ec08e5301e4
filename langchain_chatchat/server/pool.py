"""The replicas of one model name: least-busy dispatch, per-replica limits, a bounded queue,
passive health and failover.

A request takes a slot on the least-busy healthy replica (in flight ÷
`max_concurrency`); when every replica is full it waits in a bounded FIFO, and past the
bound (or `queue_timeout`) it gets a 429 with Retry-After, which clients retry. Consecutive
retryable failures take a replica out for a cool-down, after which real traffic tries it again
— but never the last healthy one: with nowhere else to go, a request is better served by the
upstream's own (typed, retryable) answer than by a synthetic outage, and model fallbacks
still take over on those errors. A call that fails before anything was streamed is retried at
once on another replica with a free slot; one that fails mid-stream cannot be, since the
client already has part of a reply.

Everything runs on the event loop, so plain integers count slots: no lock is ever held, and
a request parks on a future only when it really has to wait. The pool knows nothing of
LangChain; `dispatch.py` puts a chat-model or embeddings face on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from langchain_chatchat.server.access_log import note_replica
from langchain_chatchat.server.metrics import ModelStats, ReplicaStats
from langchain_chatchat.workers.errors import ChatchatError, RateLimitError

T = TypeVar("T")
U = TypeVar("U")
logger = logging.getLogger("langchain_chatchat.server")

UNLIMITED_CAPACITY = 1024
"""How a replica without `max_concurrency` counts when loads are compared."""
_NOTHING_TRIED: tuple[Replica, ...] = ()


class Replica:
    """One upstream serving a model name, and the pool's live view of it."""

    __slots__ = (
        "_weight",
        "down_until",
        "failures",
        "in_flight",
        "index",
        "label",
        "limit",
        "model",
        "stats",
    )

    def __init__(
        self, index: int, label: str, model: Any, limit: int | None, stats: ReplicaStats
    ) -> None:
        self.index = index
        self.label = label
        """Names the replica in metrics and logs; never holds a credential."""
        self.model = model
        self.limit = limit
        self._weight = 1.0 / (limit or UNLIMITED_CAPACITY)
        self.in_flight = 0
        self.failures = 0
        self.down_until = 0.0
        """When a cooling-down replica may be tried again (0: it is healthy)."""
        self.stats = stats

    @property
    def load(self) -> float:
        return self.in_flight * self._weight

    def healthy(self, now: float) -> bool:
        return self.down_until <= now

    def __repr__(self) -> str:
        return f"Replica({self.label!r}, in_flight={self.in_flight}, failures={self.failures})"


class ReplicaPool:
    """Hands out replica slots for one model name; `call` and `stream` run work in a slot."""

    def __init__(
        self,
        name: str,
        replicas: Sequence[Replica],
        *,
        stats: ModelStats,
        max_queue: int = 100,
        queue_timeout: float = 30.0,
        max_failures: int = 3,
        cooldown: float = 10.0,
        observe: Callable[[Any], None] | None = None,
    ) -> None:
        if not replicas:
            raise ValueError("a pool needs at least one replica")
        self.name = name
        self.replicas = tuple(replicas)
        self.stats = stats
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.max_failures = max_failures
        self.cooldown = cooldown
        self._observe = observe or _ignore
        """Sees every result and streamed chunk (to count tokens)."""
        self._waiters: deque[asyncio.Future[Replica]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    # -- running work in a slot ------------------------------------------------------------
    async def call(self, attempt: Callable[[Replica], Awaitable[T]]) -> T:
        """`attempt(replica)` in a slot, failing over to other replicas on retryable errors."""
        replica, result = await self._in_slot(await self._acquire(), attempt)
        self._release(replica, "ok")
        self._observe(result)
        return result

    async def stream(
        self, start: Callable[[Replica], AsyncGenerator[T, None]]
    ) -> AsyncGenerator[T, None]:
        """`start(replica)`'s items, holding the slot until the stream ends or is closed.

        Failover happens only while waiting for the first item. Closing this generator closes
        the replica's stream at once, so a client that leaves frees the upstream connection.
        """

        async def opened(replica: Replica) -> tuple[AsyncGenerator[T, None], list[T]]:
            items = start(replica)
            try:
                return items, [await anext(items)]
            except StopAsyncIteration:
                return items, []

        replica = await self._acquire()
        started = time.perf_counter()
        replica, (items, head) = await self._in_slot(replica, opened)
        if not head:
            self._release(replica, "ok")
            return
        first = head[0]
        self.stats.first_item.observe(time.perf_counter() - started)
        outcome = "cancelled"
        try:
            self._observe(first)
            yield first
            async for item in items:
                self._observe(item)
                yield item
            outcome = "ok"
        except Exception as error:
            outcome = "error"
            self._count_failure(replica, error)
            raise
        finally:
            await items.aclose()
            self._release(replica, outcome)

    async def _in_slot(
        self, replica: Replica, attempt: Callable[[Replica], Awaitable[U]]
    ) -> tuple[Replica, U]:
        """`attempt` in `replica`'s acquired slot, failing over to other replicas on retryable
        errors; returns the replica that succeeded, whose slot stays held."""
        tried = _NOTHING_TRIED
        while True:
            try:
                return replica, await attempt(replica)
            except ChatchatError as error:
                replica, tried = self._fail_over(replica, error, tried)
            except Exception as error:
                self._fail(replica, error)
                raise
            except BaseException:
                self._release(replica, "cancelled")
                raise

    def pick_now(self) -> Replica:
        """The least-busy healthy replica, without taking a slot: for synchronous callers,
        which neither queue nor fail over (the server itself only calls the async methods)."""
        replica = self._pick(_NOTHING_TRIED)
        if replica is None:
            raise self._busy()
        return replica

    # -- slots -----------------------------------------------------------------------------
    def _pick(self, tried: tuple[Replica, ...]) -> Replica | None:
        """The healthy, untried replica with a free slot and the lowest load: O(replicas)."""
        best: Replica | None = None
        best_load = float("inf")
        now = 0.0
        for replica in self.replicas:
            if replica.down_until:
                now = now or time.monotonic()
                if replica.down_until > now:
                    continue
            if replica.limit is not None and replica.in_flight >= replica.limit:
                continue
            if tried and replica in tried:
                continue
            load = replica.load
            if load < best_load:
                best, best_load = replica, load
        return best

    def _take(self, replica: Replica) -> Replica:
        replica.in_flight += 1
        note_replica(self.name, replica.label)
        return replica

    async def _acquire(self) -> Replica:
        replica = self._pick(_NOTHING_TRIED)
        return self._take(replica) if replica is not None else await self._wait()

    async def _wait(self) -> Replica:
        """Park until `_release` hands over a slot, the queue times out, or the caller leaves."""
        if len(self._waiters) >= self.max_queue:
            self.stats.rejected("queue_full").inc()
            raise self._busy()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Replica] = loop.create_future()
        timer = loop.call_later(self.queue_timeout, self._expire, future)
        self._waiters.append(future)
        try:
            return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._free(future.result())  # handed a slot, but leaving before using it
            elif future in self._waiters:
                self._waiters.remove(future)
            raise
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[Replica]) -> None:
        if not future.done():
            self.stats.rejected("queue_timeout").inc()
            future.set_exception(self._busy())

    def _release(self, replica: Replica, outcome: str) -> None:
        replica.stats.outcome(outcome).inc()
        if outcome == "ok" and replica.failures:
            if replica.down_until:
                logger.info("model %r replica %s is healthy again", self.name, replica.label)
            replica.failures, replica.down_until = 0, 0.0
        self._free(replica)

    def _free(self, replica: Replica) -> None:
        """Give the slot back: straight to the first waiter when one can use a replica now
        (so a newcomer cannot take it first), else to the pool."""
        replica.in_flight -= 1
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.done():  # timed out or cancelled; its owner cleans up
                self._waiters.popleft()
                continue
            free = self._pick(_NOTHING_TRIED)
            if free is None:
                return
            self._waiters.popleft()
            waiter.set_result(self._take(free))

    # -- failures --------------------------------------------------------------------------
    def _fail_over(
        self, replica: Replica, error: ChatchatError, tried: tuple[Replica, ...]
    ) -> tuple[Replica, tuple[Replica, ...]]:
        """Another replica for a call that failed before any output, or re-raise `error`."""
        self._fail(replica, error)
        tried = (*tried, replica)
        other = self._pick(tried) if error.retryable else None
        if other is None:
            raise error
        logger.info(
            "model %r: replica %s failed (%s); trying %s",
            self.name,
            replica.label,
            type(error).__name__,
            other.label,
        )
        return self._take(other), tried

    def _fail(self, replica: Replica, error: Exception) -> None:
        self._count_failure(replica, error)  # first: a tripped replica is not handed to a waiter
        self._release(replica, "error")

    def _count_failure(self, replica: Replica, error: Exception) -> None:
        """Errors by type; only retryable ones (the upstream's fault) count against health."""
        replica.stats.error(type(error).__name__).inc()
        if not getattr(error, "retryable", False):  # bad input, auth, a bug: not the replica
            return
        replica.failures += 1
        tripped = self.max_failures and replica.failures >= self.max_failures
        if tripped and self._others_healthy(replica):  # the last one standing stays in
            replica.down_until = time.monotonic() + self.cooldown
            logger.warning(
                "model %r replica %s is out for %gs after %d consecutive failures (last: %s)",
                self.name,
                replica.label,
                self.cooldown,
                replica.failures,
                type(error).__name__,
            )

    def _busy(self) -> RateLimitError:
        in_flight = sum(replica.in_flight for replica in self.replicas)
        return RateLimitError(
            f"The model '{self.name}' is at capacity ({in_flight} requests in progress,"
            f" {len(self._waiters)} waiting); retry shortly.",
            code="model_at_capacity",
            retry_after=1.0,
        )

    def _others_healthy(self, replica: Replica) -> bool:
        now = time.monotonic()
        return any(other is not replica and other.healthy(now) for other in self.replicas)


def _ignore(_: Any) -> None:
    """The default `observe`."""
