"""A closed-loop HTTP/1.1 load generator, run in its own process by `gateway.py` and `soak.py`.

`concurrency` keep-alive connections each send one request after another for `duration`
seconds (after `warmup` seconds that are not counted). A raw asyncio client on purpose: it costs
the machine far less per request than an HTTP library would, so more of the shared CPU goes to
the server being measured. Prints one JSON line: request count, errors, elapsed seconds, sorted
latencies, and for streams the time to the first chunk.

    python benchmarks/_loadgen.py '{"url": "http://127.0.0.1:8000/v1/chat/completions", ...}' [out.json]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit


class Spec:
    def __init__(self, raw: dict[str, Any]) -> None:
        parts = urlsplit(raw["url"])
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.body = json.dumps(raw.get("body", {})).encode()
        self.headers: dict[str, str] = raw.get("headers", {})
        self.stream = bool(raw.get("stream"))
        self.first_marker = raw.get("first_marker", "data: {").encode()
        self.expect = raw.get("expect", "").encode()
        self.concurrency = int(raw.get("concurrency", 1))
        self.duration = float(raw.get("duration", 3.0))
        self.warmup = float(raw.get("warmup", 0.5))
        self.timeout = float(raw.get("timeout", 30.0))

    def request_bytes(self) -> bytes:
        head = [
            f"POST {self.path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            "content-type: application/json",
            f"content-length: {len(self.body)}",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        if self.stream:
            head.append("accept: text/event-stream")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


async def _read_response(
    reader: asyncio.StreamReader, spec: Spec, started: float
) -> tuple[int, bytes, float | None]:
    """(status, body, seconds to the first chunk carrying `first_marker` — streams only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    first: float | None = None
    at = lower.find(b"content-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at)
        body = await reader.readexactly(int(head[at + 15 : end]))
        if spec.stream and spec.first_marker in body:
            first = time.perf_counter() - started
        return status, body, first
    if b"transfer-encoding: chunked" not in lower:
        body = await reader.read()  # connection: close framing
        return status, body, first
    pieces = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are sent by the servers measured
            break
        piece = await reader.readexactly(size + 2)
        pieces.append(piece[:-2])
        if first is None and spec.stream and spec.first_marker in piece:
            first = time.perf_counter() - started
    body = b"".join(pieces)
    if first is None and spec.stream and spec.first_marker in body:  # marker split across chunks
        first = time.perf_counter() - started
    return status, body, first


async def run(spec: Spec) -> dict[str, Any]:
    request = spec.request_bytes()
    latencies: list[float] = []
    firsts: list[float] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    cpu_started = time.process_time()
    begin = loop.time()
    count_from = begin + spec.warmup
    stop_at = count_from + spec.duration

    async def worker() -> None:
        reader = writer = None
        while True:
            now = loop.time()
            if now >= stop_at:
                break
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(spec.host, spec.port)
                started = time.perf_counter()
                writer.write(request)
                status, body, first = await asyncio.wait_for(
                    _read_response(reader, spec, started), spec.timeout
                )
                elapsed = time.perf_counter() - started
                ok = status == 200 and (not spec.expect or spec.expect in body)
                if now >= count_from:
                    if ok:
                        latencies.append(elapsed)
                        if first is not None:
                            firsts.append(first)
                    else:
                        errors.append(f"{status}: {body[:200]!r}")
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                asyncio.TimeoutError,
                ValueError,
            ) as error:
                if loop.time() >= count_from:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    end = loop.time()
    latencies.sort()
    firsts.sort()
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:3],
        "elapsed": max(1e-9, min(end, stop_at + spec.timeout) - count_from),
        "window": spec.duration,
        "cpu": time.process_time() - cpu_started,  # warm-up included
        "latencies": [round(x, 6) for x in latencies],
        "first_chunk": [round(x, 6) for x in firsts],
    }


def main() -> None:
    spec = Spec(json.loads(sys.argv[1]))
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    result = json.dumps(asyncio.run(run(spec)))
    if len(sys.argv) > 2:  # big results go to a file: a pipe may be left non-blocking by the loop
        with open(sys.argv[2], "w") as out:
            out.write(result)
    else:
        print(result, flush=True)


if __name__ == "__main__":
    main()
