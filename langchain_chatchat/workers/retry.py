"""Retries with exponential backoff and full jitter, for retryable errors only.

A streamed call is retried only while nothing has been yielded yet: once text reached the
caller, repeating the request would duplicate it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from langchain_chatchat.workers.errors import ChatchatError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        return isinstance(error, ChatchatError) and error.retryable and attempt < self.max_retries

    def delay(self, attempt: int, error: BaseException) -> float:
        """Full-jitter backoff; a provider's Retry-After wins when it asks for longer."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            backoff = max(backoff, min(float(retry_after), self.max_delay))
        return backoff


def retry_stream(policy: RetryPolicy, start: Callable[[], Iterator[T]]) -> Iterator[T]:
    attempt = 0
    while True:
        started = False
        try:
            for item in start():
                started = True
                yield item
            return
        except ChatchatError as error:
            if started or not policy.should_retry(error, attempt):
                raise
            time.sleep(policy.delay(attempt, error))
            attempt += 1


async def aretry_stream(
    policy: RetryPolicy, start: Callable[[], AsyncIterator[T]]
) -> AsyncGenerator[T, None]:
    attempt = 0
    while True:
        started = False
        try:
            async for item in start():
                started = True
                yield item
            return
        except ChatchatError as error:
            if started or not policy.should_retry(error, attempt):
                raise
            await asyncio.sleep(policy.delay(attempt, error))
            attempt += 1


def retry_call(policy: RetryPolicy, call: Callable[[], T]) -> T:
    attempt = 0
    while True:
        try:
            return call()
        except ChatchatError as error:
            if not policy.should_retry(error, attempt):
                raise
            time.sleep(policy.delay(attempt, error))
            attempt += 1


async def aretry_call(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    attempt = 0
    while True:
        try:
            return await call()
        except ChatchatError as error:
            if not policy.should_retry(error, attempt):
                raise
            await asyncio.sleep(policy.delay(attempt, error))
            attempt += 1
