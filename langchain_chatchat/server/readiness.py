"""Start-up loading: models that load weights (local ones) are loaded and warmed at start-up.

Every replica model with a public `load()` is loaded, then `warm()`ed (one tiny request) when it
has one, one model at a time in a worker thread while the server already answers `/health`.
`/ready` answers 503 with what is still loading (or what failed) until all are done, then 200.
With `lazy`, nothing is loaded up front and models load on their first request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)


class Readiness:
    """Which served models still load; `run()` loads them all."""

    def __init__(self, models: Iterable[tuple[str, list[Any]]], *, lazy: bool = False) -> None:
        self._pending: dict[str, list[Any]] = {}
        if not lazy:
            for name, replicas in models:
                loadable = [model for model in replicas if callable(getattr(model, "load", None))]
                if loadable:
                    self._pending[name] = loadable
        self.loading: list[str] = list(self._pending)
        self.failed: dict[str, str] = {}

    @property
    def ready(self) -> bool:
        return not self.loading and not self.failed

    def status(self) -> dict[str, Any]:
        if self.failed:
            return {"status": "failed", "failed": self.failed}
        if self.loading:
            return {"status": "loading", "loading": self.loading}
        return {"status": "ready"}

    async def run(self) -> None:
        for name, replicas in self._pending.items():
            started = time.perf_counter()
            try:
                for model in replicas:
                    await asyncio.to_thread(model.load)
                    if callable(warm := getattr(model, "warm", None)):
                        await asyncio.to_thread(warm)
            except Exception as error:  # reported by /ready and the log; the server stays up
                logger.error("model %r failed to load: %s", name, error)
                self.failed[name] = str(error)
            else:
                logger.info("model %r ready in %.1fs", name, time.perf_counter() - started)
            finally:
                self.loading.remove(name)
