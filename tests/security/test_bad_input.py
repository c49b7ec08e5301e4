"""Bad input is a 4xx in OpenAI's error shape on every route, never a 500, a hang or a cut
connection: absurdly nested JSON, lone UTF-16 surrogates in any string, oversized heads (431)
and bodies (413, received even by Python's urllib), and slow clients (408, connection caps)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import httpx
import pytest

from langchain_chatchat.testing import Reply
from tests.security.conftest import HEAD_TIMEOUT, HI, MAX_BODY, MAX_HEAD, SERVER_KEY

AUTH = {"Authorization": f"Bearer {SERVER_KEY}", "Content-Type": "application/json"}


def _assert_openai_4xx(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


# -- nesting ------------------------------------------------------------------------------------
def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_bodies(depth: int) -> list[tuple[str, str]]:
    deep = _nested(depth)
    return [
        ("/v1/chat/completions", f'{{"model": "qwen", "messages": {deep}}}'),
        ("/v1/chat/completions", f'{{"model": "qwen", "messages": {json.dumps(HI)}, "x": {deep}}}'),
        (
            "/v1/chat/completions",
            f'{{"model": "qwen", "messages": {json.dumps(HI)}, "tools": {deep}}}',
        ),
        ("/v1/completions", f'{{"model": "qwen", "prompt": {deep}}}'),
        ("/v1/embeddings", f'{{"model": "embed", "input": {deep}}}'),
        *((f"/qwen/{what}", f'{{"input": {deep}}}') for what in ("invoke", "stream", "stream_log")),
        ("/qwen/stream_events", f'{{"input": {deep}}}'),
        ("/qwen/batch", f'{{"inputs": {deep}}}'),
        ("/qwen/invoke", f'{{"input": "hi", "config": {{"configurable": {{"a": {deep}}}}}}}'),
        ("/embed/invoke", f'{{"input": {deep}}}'),
    ]


@pytest.mark.parametrize("depth", [10_000, 2_000, 900, 200])
def test_deeply_nested_json_is_400_on_every_route(http, up, transcript, ledger, depth):
    bodies = _deep_bodies(depth)
    for path, body in bodies:
        _assert_openai_4xx(transcript.add(http.post(path, content=body, headers=AUTH)))
    ledger.count("JSON nested deep (200..10,000)", len(bodies))
    assert up.calls() == 0


# -- lone surrogates ------------------------------------------------------------------------------
LONE = [r"\ud800", r"\udfff", r"x\ud83dy", r"\ude00\ud83d", r"\ud83d\ud83d"]


def _surrogate_bodies(s: str) -> list[tuple[str, str]]:
    msg = f'[{{"role": "user", "content": "{s}"}}]'
    return [
        ("/v1/chat/completions", f'{{"model": "qwen", "messages": {msg}}}'),
        ("/v1/chat/completions", f'{{"model": "qwen", "messages": {msg}, "stream": true}}'),
        ("/v1/chat/completions", f'{{"model": "qwen{s}", "messages": {json.dumps(HI)}}}'),
        (
            "/v1/chat/completions",
            f'{{"model": "qwen", "messages": {json.dumps(HI)}, "stop": "{s}"}}',
        ),
        (
            "/v1/chat/completions",
            f'{{"model": "qwen", "messages": {json.dumps(HI)}, "user": "{s}"}}',
        ),
        (
            "/v1/chat/completions",
            f'{{"model": "qwen", "messages": [{{"role": "user", "content": [{{"type": "text",'
            f' "text": "{s}"}}]}}]}}',
        ),
        ("/v1/chat/completions", f'{{"model": "qwen", "messages": {json.dumps(HI)}, "{s}": 1}}'),
        ("/v1/completions", f'{{"model": "qwen", "prompt": "{s}"}}'),
        ("/v1/completions", f'{{"model": "qwen", "prompt": "{s}", "stream": true}}'),
        ("/v1/embeddings", f'{{"model": "embed", "input": "{s}"}}'),
        ("/v1/embeddings", f'{{"model": "embed", "input": ["ok", "{s}"]}}'),
        *((f"/qwen/{what}", f'{{"input": "{s}"}}') for what in ("invoke", "stream", "stream_log")),
        ("/qwen/stream_events", f'{{"input": "{s}"}}'),
        ("/qwen/batch", f'{{"inputs": ["{s}"]}}'),
        ("/qwen/invoke", f'{{"input": [{{"type": "human", "content": "{s}"}}]}}'),
        ("/embed/invoke", f'{{"input": ["{s}"]}}'),
    ]


@pytest.mark.parametrize("surrogate", LONE)
def test_lone_surrogates_are_400_on_every_route(http, up, transcript, ledger, surrogate):
    bodies = _surrogate_bodies(surrogate)
    for path, body in bodies:
        error = _assert_openai_4xx(transcript.add(http.post(path, content=body, headers=AUTH)), 400)
        assert "surrogate" in error["message"]
    ledger.count("lone UTF-16 surrogate in a string", len(bodies))
    assert up.calls() == 0


def test_invalid_utf8_bytes_are_400(http, up, transcript, ledger):
    bodies = [
        (
            "/v1/chat/completions",
            b'{"model": "qwen", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
        ),
        ("/v1/embeddings", b'{"model": "embed", "input": "\xff\xfe"}'),
        ("/qwen/invoke", b'{"input": "\xc3\x28"}'),
    ]
    for path, body in bodies:
        _assert_openai_4xx(transcript.add(http.post(path, content=body, headers=AUTH)))
    ledger.count("invalid UTF-8 bytes", len(bodies))


@pytest.mark.parametrize(
    ("escaped", "expected"),
    [(r"\ud83d\ude00", "\U0001f600"), (r"\\ud800", "\\ud800"), (r"\\\ud83d\ude00", "\\\U0001f600")],
)
def test_valid_escapes_still_pass(http, up, escaped, expected):
    """A surrogate pair is an emoji, and an escaped backslash before `ud800` is plain text."""
    up.dashscope.enqueue(Reply(text="ok"))
    body = f'{{"model": "qwen", "messages": [{{"role": "user", "content": "{escaped}"}}]}}'
    response = http.post("/v1/chat/completions", content=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert up.dashscope.requests[-1].body["input"]["messages"][-1]["content"] == expected


# -- oversized bodies -----------------------------------------------------------------------------
def _urllib_post(url: str, body: bytes | Any, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={**AUTH, **headers}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("size", [MAX_BODY + 1, 4 * MAX_BODY, 1024 * 1024])
def test_oversized_bodies_are_413_and_urllib_receives_it(served, up, transcript, ledger, size):
    body = b'{"input": "' + b"x" * size + b'"}'
    paths = (
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/qwen/invoke",
        "/qwen/stream",
    )
    for path in paths:
        status, answer = _urllib_post(served.url + path, body)
        transcript.note(answer.decode())
        assert status == 413, (path, status)
        assert json.loads(answer)["error"]["code"] == "request_too_large"
        # chunked, without a Content-Length: found while reading, still answered
        status, answer = _urllib_post(
            served.url + path, iter([body[:1000], body[1000:]]), **{"Transfer-Encoding": "chunked"}
        )
        assert status == 413, (path, status)
    ledger.count("oversized body (413 through urllib)", 2 * len(paths))
    assert up.calls() == 0


# -- request heads --------------------------------------------------------------------------------
def _raw(served: Any, payload: bytes, *, read_timeout: float = 5.0) -> bytes:
    """Send `payload` on a fresh socket and return what the server answers before closing."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=read_timeout) as sock:
        try:
            sock.sendall(payload)
        except OSError:  # the server stopped reading: what it answered may still be there
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
    return b"".join(chunks)


def _head(extra: bytes) -> bytes:
    return (
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + SERVER_KEY.encode()
        + b"\r\n"
        + extra
        + b"\r\n"
    )


def test_oversized_request_heads_are_431(served, ledger):
    tried = 0
    for extra in (
        b"X-Big: " + b"a" * (MAX_HEAD + 10) + b"\r\n",
        b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(MAX_HEAD // 100)),
    ):
        answer = _raw(served, _head(extra))
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["code"] == "request_header_fields_too_large"
        tried += 1
    long_url = b"GET /v1/models?" + b"q" * (MAX_HEAD + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _raw(served, long_url).startswith(b"HTTP/1.1 431 ")
    ledger.count("oversized request head", tried + 1)


@pytest.mark.parametrize("size", [1024 * 1024, 16 * 1024 * 1024])
def test_huge_heads_are_cut_off_early(served, ledger, size):
    """A 1 MB or 16 MB header is not read in full: the server answers 431 and closes, and the
    client cannot push the rest (if the reset beats the answer, nothing else arrives)."""
    started = time.monotonic()
    payload = _head(b"X-Huge: " + b"h" * size + b"\r\n")
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sent_all = True
        try:
            sock.sendall(payload)
        except OSError:
            sent_all = False
        try:
            answer = sock.recv(65536)
        except OSError:
            answer = b""
    assert answer.startswith(b"HTTP/1.1 431 ") or not sent_all, answer[:100]
    if size >= 16 * 1024 * 1024:
        assert not sent_all  # the server closed long before 16 MB
    assert time.monotonic() - started < 5
    with httpx.Client(base_url=served.url) as client:  # and it serves on
        assert client.get("/health").status_code == 200
    ledger.count("huge request head (1 MB / 16 MB)", 1)


def test_malformed_request_lines_are_400_in_openai_shape(served, ledger):
    for payload in (b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"):
        answer = _raw(served, payload)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
        assert (
            json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "invalid_request_error"
        )
    ledger.count("malformed request line / header", 2)


# -- slow clients ---------------------------------------------------------------------------------
def test_slowloris_heads_are_cut_after_the_header_timeout(served, ledger):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        try:
            for _ in range(40):  # one byte every 0.1 s: would hold the socket for ever
                sock.sendall(b"X")
                time.sleep(0.1)
        except OSError:
            pass
        try:
            answer = sock.recv(65536)
        except OSError:
            pass
    elapsed = time.monotonic() - started
    assert elapsed < HEAD_TIMEOUT + 3.5
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b"", answer[:100]
    ledger.count("slowloris (partial head, byte by byte)", 1)


def test_idle_connections_are_closed(served, ledger):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        answer = sock.recv(65536)  # returns when the server closes
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < HEAD_TIMEOUT + 2
    ledger.count("idle connection (no head at all)", 1)


def test_connections_beyond_the_cap_get_503_not_a_hang(served, ledger):
    held = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(64)]
    try:
        with httpx.Client(base_url=served.url, headers=AUTH, timeout=5) as client:
            assert client.get("/v1/models").status_code == 503
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with httpx.Client(base_url=served.url, headers=AUTH, timeout=5) as client:
        assert client.get("/v1/models").status_code == 200
    ledger.count("connections beyond max_connections", 65)
