"""A zero-latency OpenAI-compatible upstream for benchmarks and soak runs, as cheap as possible.

A raw asyncio HTTP/1.1 server (keep-alive, Content-Length bodies; chunked SSE for streams) that
answers `POST .../chat/completions` at once and `GET .../models`. It does no JSON work in the
default mode: the reply bytes are built once at start-up, so whatever it costs is the floor every
gateway is measured against.

    python benchmarks/_fake_upstream.py --port 0 [--chunks 8] [--echo]

`--echo` (soak runs) parses each request and answers with the last user message's text, and
counts how many times each text was seen — `GET /stats` returns the counts, so a soak can prove
that no request reached the upstream twice. The chosen port is printed as `PORT <n>` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from collections import Counter

TEXT = "Hello! How can I help you today?"
MODEL = "fake-model"


def _completion(text: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return (
        b"data: " + json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    )


def _pieces(text: str, chunks: int) -> list[str]:
    words = text.split(" ")
    if chunks <= 1 or len(words) <= 1:
        return [text]
    size = max(1, -(-len(words) // chunks))
    groups = [words[i : i + size] for i in range(0, len(words), size)]
    return [" ".join(g) + (" " if i < len(groups) - 1 else "") for i, g in enumerate(groups)]


def _stream(text: str, chunks: int, include_usage: bool) -> bytes:
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": piece}) for piece in _pieces(text, chunks)]
    events.append(_chunk({}, "stop"))
    if include_usage:
        events.append(
            _chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18})
        )
    events.append(b"data: [DONE]\n\n")
    # One HTTP chunk per SSE event, as a real server flushing each token would send them.
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nx-request-id: fake\r\n\r\n"
        + body
    )


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    b"cache-control: no-cache\r\nx-request-id: fake\r\n\r\n"
)
_MODELS = _response(
    "200 OK",
    json.dumps(
        {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "fake"}]}
    ).encode(),
)
_NOT_FOUND = _response(
    "404 Not Found",
    b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}',
)


class Upstream:
    def __init__(self, chunks: int, echo: bool) -> None:
        self.chunks = chunks
        self.echo = echo
        self.seen: Counter[str] = Counter()
        self.fixed_completion = _response("200 OK", _completion(TEXT))
        self.fixed_stream = _STREAM_HEAD + _stream(TEXT, chunks, include_usage=True)
        self.fixed_stream_no_usage = _STREAM_HEAD + _stream(TEXT, chunks, include_usage=False)

    def answer(self, method: bytes, path: bytes, body: bytes) -> bytes:
        if method == b"POST" and path.endswith(b"/chat/completions"):
            stream = b'"stream":true' in body or b'"stream": true' in body
            if not self.echo:
                if not stream:
                    return self.fixed_completion
                usage = b'"include_usage":true' in body or b'"include_usage": true' in body
                return self.fixed_stream if usage else self.fixed_stream_no_usage
            request = json.loads(body)
            text = next(
                (
                    m.get("content")
                    for m in reversed(request.get("messages", []))
                    if m.get("role") == "user"
                ),
                "",
            )
            text = text if isinstance(text, str) else json.dumps(text)
            self.seen[text] += 1
            if not request.get("stream"):
                return _response("200 OK", _completion(text))
            include = bool((request.get("stream_options") or {}).get("include_usage"))
            return _STREAM_HEAD + _stream(text, self.chunks, include)
        if method == b"GET" and path.endswith(b"/models"):
            return _MODELS
        if method == b"GET" and path == b"/stats":
            duplicates = sum(1 for count in self.seen.values() if count > 1)
            return _response(
                "200 OK",
                json.dumps(
                    {
                        "requests": sum(self.seen.values()),
                        "unique": len(self.seen),
                        "duplicates": duplicates,
                    }
                ).encode(),
            )
        if method == b"POST" and path == b"/reset":
            self.seen.clear()
            return _response("200 OK", b"{}")
        return _NOT_FOUND


class _Protocol(asyncio.Protocol):
    __slots__ = ("buffer", "transport", "upstream")

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            length = 0
            lower = head.lower()
            at = lower.find(b"content-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else len(head)])
            if len(buffer) < end + 4 + length:
                break
            body = buffer[end + 4 : end + 4 + length]
            buffer = buffer[end + 4 + length :]
            line = head[: head.find(b"\r\n")] if b"\r\n" in head else head
            method, path, _ = line.split(b" ", 2)
            out.append(self.upstream.answer(method, path.split(b"?", 1)[0], body))
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])  # type: ignore[union-attr]


async def serve(port: int, chunks: int, echo: bool, host: str = "127.0.0.1") -> None:
    upstream = Upstream(chunks, echo)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(upstream), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=8, help="content chunks per streamed reply")
    parser.add_argument(
        "--echo", action="store_true", help="answer with the user's text; count ids"
    )
    args = parser.parse_args(argv)
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args.port, args.chunks, args.echo))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    if os.environ.get("FAKE_UPSTREAM_NICE"):
        os.nice(int(os.environ["FAKE_UPSTREAM_NICE"]))
    main(sys.argv[1:])
