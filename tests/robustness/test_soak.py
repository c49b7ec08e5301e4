"""The soak run in CI size: 600 requests, 32 concurrent streams, through real processes.

`benchmarks/soak.py` starts the echoing fake upstream and `chatchat serve` in their own
processes, drives mixed streaming/non-streaming load with a unique id per request and samples
the server's RSS. Asserted: every id answered exactly once with its own text, nothing failed,
the upstream saw every id exactly once, and RSS after warm-up stays within 10%.
The full run (10,000 requests, 64 concurrent) is `python benchmarks/soak.py`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _soak_module():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("chatchat_soak", BENCHMARKS / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RSS is read from /proc")
def test_soak_nothing_lost_or_duplicated_and_memory_flat():
    soak = _soak_module()
    requests = int(os.environ.get("SOAK_REQUESTS", "600"))
    result = soak.run_soak(requests=requests, concurrency=32, warmup=requests // 3)
    print(result.summary())
    assert result.failures == []
    assert result.duplicates == []
    assert result.missing == 0
    assert result.upstream == {"requests": requests, "unique": requests, "duplicates": 0}
    assert result.rss_baseline > 0 and len(result.rss_samples) >= 1
    assert result.problems() == []  # includes RSS within 10% of the post-warm-up baseline
