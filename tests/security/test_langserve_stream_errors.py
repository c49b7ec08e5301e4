"""LangServe's stream endpoints say what went wrong upstream — 429 (with Retry-After), 504,
502 — in their `event: error`, and end the event stream cleanly instead of cutting it."""

from __future__ import annotations

import json

import httpx
import pytest
from langserve import RemoteRunnable

from langchain_chatchat.testing import Fault
from tests.security.conftest import SERVER_KEY

STREAMS = ("stream", "stream_log", "stream_events")
CASES = [
    # model, what the upstream does, the status the client must see, retry_after
    ("azure", Fault.http(429, "429", "Requests exceeded the rate limit"), 429, 6),
    ("deepseek", Fault.hang(3.0), 504, None),
    ("qwen", Fault.http(500, "InternalError", "upstream broke"), 502, None),
    ("zhipu", Fault.http(401, "1001", "bad token"), 401, None),
]


def _events(text: str) -> list[tuple[str, str]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in fields:
            events.append((fields["event"], fields.get("data", "")))
    return events


@pytest.mark.parametrize(("model", "fault", "status", "retry_after"), CASES)
def test_stream_errors_carry_the_upstream_status_and_end_cleanly(
    http, up, transcript, ledger, model, fault, status, retry_after
):
    for endpoint in STREAMS:
        up.of(model).enqueue(fault)
        # httpx raises RemoteProtocolError on a cut chunked transfer: reading it all is the test
        with http.stream("POST", f"/{model}/{endpoint}", json={"input": "hi"}) as response:
            assert response.status_code == 200  # the stream had started
            text = response.read().decode()
        transcript.note(text)
        events = _events(text)
        assert events and events[-1][0] == "error", text
        error = json.loads(events[-1][1])
        assert error["status_code"] == status, error
        assert error["error"]["type"] and error["message"]
        assert error.get("retry_after") == retry_after
        assert not any(name == "end" for name, _ in events)
        up.of(model).reset()
    ledger.count("LangServe stream error status (429/504/502/401)", len(STREAMS))


def test_remote_runnable_sees_the_status(served, up, ledger):
    remote = RemoteRunnable(
        f"{served.url}/azure", headers={"Authorization": f"Bearer {SERVER_KEY}"}
    )
    up.of("azure").enqueue(CASES[0][1])
    with pytest.raises(httpx.HTTPStatusError) as caught:
        list(remote.stream("hi"))
    assert caught.value.response.status_code == 429
    ledger.count("LangServe stream error status (429/504/502/401)", 1)


def test_a_healthy_stream_still_ends_with_end(http, up):
    with http.stream("POST", "/qwen/stream", json={"input": "hi"}) as response:
        events = _events(response.read().decode())
    assert events[-1][0] == "end" and any(name == "data" for name, _ in events)
