"""Soak run: many requests through `chatchat serve`, checking memory and that nothing is lost.

    python benchmarks/soak.py                          # 10,000 requests, 64 concurrent
    python benchmarks/soak.py --requests 600 --concurrency 32 --warmup 200   # the CI size

Starts the fake OpenAI-compatible upstream in echo mode (it answers with the user's text and
counts every text it sees) and the server (`chatchat serve`, provider `openai_compatible`
pointed at it), each in its own process, then sends `--requests` requests, `--concurrency` at
a time — three in four streamed, the rest not — each carrying a unique id (in the text and in
`X-Request-ID`). While it runs, the server's RSS is sampled. It then checks, and exits
non-zero unless all hold:

- every id was answered exactly once, with its own text, `X-Request-ID` and a finished reply
  (`finish_reason` "stop"; streams end with `[DONE]`), and no request failed;
- the upstream saw every id exactly once (no retry duplicated a request, none was lost);
- after the warm-up requests, the server's RSS stayed within `--rss-tolerance` (10%) of its
  level at the end of the warm-up, at its peak and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from gateway import API_KEY, MODEL, _stop_all, start_ours, start_upstream


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class SoakResult:
    requests: int
    concurrency: int
    warmup: int
    seconds: float = 0.0
    answered: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    upstream: dict[str, int] = field(default_factory=dict)
    rss_samples: list[tuple[int, int]] = field(default_factory=list)  # (requests done, bytes)
    rss_baseline: int = 0
    rss_peak_after_warmup: int = 0
    rss_final: int = 0
    tolerance: float = 0.10

    @property
    def duplicates(self) -> list[str]:
        return [rid for rid, count in self.answered.items() if count > 1]

    @property
    def missing(self) -> int:
        return self.requests - len(self.answered)

    def problems(self) -> list[str]:
        found = []
        if self.failures:
            found.append(f"{len(self.failures)} failed requests, e.g. {self.failures[:3]}")
        if self.duplicates:
            found.append(
                f"{len(self.duplicates)} ids answered more than once, e.g. {self.duplicates[:3]}"
            )
        if self.missing:
            found.append(f"{self.missing} ids never answered")
        expected = {"requests": self.requests, "unique": self.requests, "duplicates": 0}
        if self.upstream != expected:
            found.append(f"upstream saw {self.upstream}, expected {expected}")
        limit = self.rss_baseline * (1 + self.tolerance)
        if self.rss_peak_after_warmup > limit:
            found.append(
                f"RSS peaked at {self.rss_peak_after_warmup / 2**20:.1f} MiB after warm-up,"
                f" over {limit / 2**20:.1f} MiB (baseline {self.rss_baseline / 2**20:.1f} MiB + {self.tolerance:.0%})"
            )
        if self.rss_final > limit:
            found.append(
                f"RSS ended at {self.rss_final / 2**20:.1f} MiB, over {limit / 2**20:.1f} MiB"
            )
        return found

    def summary(self) -> str:
        growth = (
            (self.rss_peak_after_warmup / self.rss_baseline - 1)
            if self.rss_baseline
            else float("nan")
        )
        return "\n".join(
            [
                (
                    f"requests {self.requests} (concurrency {self.concurrency}) in"
                    f" {self.seconds:.1f}s = {self.requests / self.seconds:.0f} req/s"
                ),
                (
                    f"answered once: {sum(1 for c in self.answered.values() if c == 1)};"
                    f" duplicates: {len(self.duplicates)}; missing: {self.missing};"
                    f" failures: {len(self.failures)}"
                ),
                f"upstream: {self.upstream}",
                (
                    f"RSS: baseline after {self.warmup} warm-up requests"
                    f" {self.rss_baseline / 2**20:.1f} MiB; peak after"
                    f" {self.rss_peak_after_warmup / 2**20:.1f} MiB ({growth:+.1%}); final"
                    f" {self.rss_final / 2**20:.1f} MiB; {len(self.rss_samples)} samples"
                ),
            ]
        )


async def _one(session: aiohttp.ClientSession, url: str, rid: str, stream: bool) -> str:
    """Send request `rid`; return the text it was answered with (raises on any protocol fault)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": rid}], "stream": stream}
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Request-ID": rid}
    async with session.post(url, json=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:200]}")
        if response.headers.get("x-request-id") != rid:
            raise RuntimeError(f"x-request-id {response.headers.get('x-request-id')!r}")
        if not stream:
            reply = await response.json()
            choice = reply["choices"][0]
            if choice["finish_reason"] != "stop":
                raise RuntimeError(f"finish_reason {choice['finish_reason']!r}")
            return choice["message"]["content"]
        text, finished, done = [], False, False
        async for raw in response.content:
            line = raw.strip()
            if not line:
                continue
            if done:
                raise RuntimeError(f"data after [DONE]: {line[:100]!r}")
            if line == b"data: [DONE]":
                done = True
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"in-stream error {chunk['error']}")
            for choice in chunk["choices"]:
                text.append(choice["delta"].get("content") or "")
                finished = finished or choice["finish_reason"] == "stop"
        if not (finished and done):
            raise RuntimeError(f"stream ended early (finished={finished}, done={done})")
        return "".join(text)


async def _drive(result: SoakResult, url: str, pid: int, warmup_done: asyncio.Event) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(result.requests):
        queue.put_nowait(index)
    done = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while not queue.empty():
            index = queue.get_nowait()
            rid = f"soak-{index:06d}"
            try:
                text = await _one(session, url, rid, stream=index % 4 != 3)
                if text != rid:
                    raise RuntimeError(f"answered with {text[:60]!r}")
                result.answered[rid] += 1
            except Exception as error:  # noqa: BLE001 - every failure is recorded and reported
                result.failures.append(f"{rid}: {type(error).__name__}: {error}"[:300])
            done += 1
            if done == result.warmup:
                warmup_done.set()

    async def sample() -> None:
        while True:
            result.rss_samples.append((done, rss_bytes(pid)))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(result.concurrency)))
    sampler.cancel()


def run_soak(
    requests: int = 10_000, concurrency: int = 64, warmup: int = 1_000, tolerance: float = 0.10
) -> SoakResult:
    """Start upstream and server, drive the load, and return what was observed."""
    workdir = Path(tempfile.mkdtemp(prefix="chatchat-soak-"))
    result = SoakResult(
        requests=requests, concurrency=concurrency, warmup=warmup, tolerance=tolerance
    )
    try:
        upstream, _ = start_upstream(workdir, "--echo")
        targets, server = start_ours(workdir, upstream)
        url = targets[0].invoke_url

        async def main() -> None:
            warmup_done = asyncio.Event()
            baseline: list[int] = []

            async def take_baseline() -> None:
                await warmup_done.wait()
                baseline.append(rss_bytes(server.pid))

            started = time.perf_counter()
            watcher = asyncio.create_task(take_baseline())
            await _drive(result, url, server.pid, warmup_done)
            result.seconds = time.perf_counter() - started
            watcher.cancel()
            result.rss_baseline = baseline[0] if baseline else rss_bytes(server.pid)

        asyncio.run(main())
        result.rss_final = rss_bytes(server.pid)
        after = [size for count, size in result.rss_samples if count >= warmup]
        result.rss_peak_after_warmup = max([*after, result.rss_final])
        stats_url = upstream.removesuffix("/v1") + "/stats"
        with urllib.request.urlopen(stats_url, timeout=10) as response:
            result.upstream = json.load(response)
    finally:
        _stop_all()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--warmup", type=int, help="requests before the RSS baseline (default: 10%%)"
    )
    parser.add_argument("--rss-tolerance", type=float, default=0.10)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else max(1, args.requests // 10)
    result = run_soak(args.requests, args.concurrency, warmup, args.rss_tolerance)
    print(result.summary())
    problems = result.problems()
    for problem in problems:
        print(f"FAIL: {problem}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "summary": result.summary(),
                    "problems": problems,
                    "rss_samples": result.rss_samples,
                    "upstream": result.upstream,
                },
                indent=2,
            )
        )
    print("OK" if not problems else "FAILED")
    return 0 if not problems else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
