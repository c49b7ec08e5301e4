"""Observability: Prometheus /metrics (requests, latency histograms, tokens, errors by type,
in-flight and queued), the structured access log, and request ids on every response.

Each test builds its own app over the session's DashScope emulator, so counts start at zero.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator, Fault, Reply
from tests.server.conftest import API_KEY, qwen_params

AUTH = {"Authorization": f"Bearer {API_KEY}"}
HI = [{"role": "user", "content": "hi"}]


def config(emulator: DashScopeEmulator, **server: Any) -> dict[str, Any]:
    return {
        "server": {"api_keys": [API_KEY], **server},
        "models": [
            {
                "name": "qwen-plus",
                "provider": "qwen",
                "params": qwen_params(emulator, "qwen-plus"),
                "max_concurrency": 1,
            },
            {
                "name": "embed",
                "provider": "qwen",
                "kind": "embeddings",
                "params": qwen_params(emulator, "text-embedding-v3"),
            },
        ],
    }


@contextmanager
def client_for(emulator: DashScopeEmulator, **server: Any) -> Iterator[httpx.Client]:
    app = create_app(config(emulator, **server))
    with (
        BackgroundServer(app) as running,
        httpx.Client(base_url=running.url, headers=AUTH, timeout=10) as client,
    ):
        yield client


def samples(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by (name, labels)."""
    text = client.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(table: dict, name: str, **labels: str) -> float:
    return table.get((name, frozenset(labels.items())), 0.0)


def test_requests_latency_tokens_and_errors(emulator):
    emulator.enqueue(
        Reply(text="a b c", usage={"input_tokens": 5, "output_tokens": 3}),
        Reply(text="d e", usage={"input_tokens": 7, "output_tokens": 2}),
        Fault.http(429, "Throttling.RateQuota", "slow down"),
    )
    with client_for(emulator) as client:
        # first: a response is counted once its last byte is sent, maybe after the client moved on
        assert client.get("/docs").status_code == 200
        assert client.get("/web/static/chat.js").status_code == 200
        chat = {"model": "qwen-plus", "messages": HI}
        assert client.post("/v1/chat/completions", json=chat).status_code == 200
        stream = {**chat, "stream": True}
        assert client.post("/v1/chat/completions", json=stream).status_code == 200
        assert client.post("/v1/chat/completions", json=chat).status_code == 429
        assert (
            client.post("/v1/embeddings", json={"model": "embed", "input": ["x y"]}).status_code
            == 200
        )
        assert client.post("/qwen-plus/invoke", json={"input": "hi"}).status_code == 200
        assert client.get("/nowhere").status_code == 404
        assert (
            client.get("/v1/models", headers={"authorization": "Bearer wrong"}).status_code == 401
        )
        table = samples(client)

    def http(route: str, status: str, method: str = "POST") -> float:
        return value(
            table, "chatchat_http_requests_total", method=method, route=route, status=status
        )

    assert http("/v1/chat/completions", "200") == 2
    assert http("/v1/chat/completions", "429") == 1
    assert http("/{model}/invoke", "200") == 1  # LangServe routes by their template
    assert http("/docs", "200", "GET") == 1
    assert http("/web/static/{path}", "200", "GET") == 1
    assert http("/v1/models", "401", "GET") == 1  # answered before routing, labelled all the same
    assert http("unmatched", "404", "GET") == 1  # unknown paths cannot blow up cardinality
    duration = "chatchat_http_request_duration_seconds_count"
    assert value(table, duration, method="POST", route="/v1/chat/completions") == 3
    assert value(table, "chatchat_time_to_first_chunk_seconds_count", model="qwen-plus") == 1
    # 5+7 scripted, plus the default responder's reply to the LangServe call
    assert value(table, "chatchat_tokens_total", model="qwen-plus", type="input") > 12
    assert value(table, "chatchat_tokens_total", model="qwen-plus", type="output") > 5
    assert value(table, "chatchat_tokens_total", model="embed", type="input") == 2
    replica = {"model": "qwen-plus", "replica": "0:qwen"}
    assert value(table, "chatchat_upstream_errors_total", **replica, error="RateLimitError") == 1
    assert value(table, "chatchat_upstream_requests_total", **replica, outcome="ok") == 3
    assert value(table, "chatchat_upstream_requests_total", **replica, outcome="error") == 1


def test_in_flight_and_queued_are_reported_while_requests_wait(emulator):
    emulator.enqueue(Reply(text="slow", first_chunk_delay=0.6))
    with client_for(emulator) as client, ThreadPoolExecutor(2) as pool:
        body = {"model": "qwen-plus", "messages": HI}
        running = [pool.submit(client.post, "/v1/chat/completions", json=body) for _ in range(2)]
        deadline = time.monotonic() + 5
        while value(table := samples(client), "chatchat_model_queued", model="qwen-plus") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert value(table, "chatchat_replica_in_flight", model="qwen-plus", replica="0:qwen") == 1
        assert value(table, "chatchat_replica_healthy", model="qwen-plus", replica="0:qwen") == 1
        assert [future.result().status_code for future in running] == [200, 200]
        table = samples(client)
    assert value(table, "chatchat_replica_in_flight", model="qwen-plus", replica="0:qwen") == 0
    assert value(table, "chatchat_model_queued", model="qwen-plus") == 0


def test_metrics_need_the_api_key_and_can_be_turned_off(emulator):
    with client_for(emulator) as client:
        assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    with client_for(emulator, metrics=False) as client:
        assert client.get("/metrics").status_code == 404


def test_access_log_is_one_json_line_per_request_with_its_id_and_replica(emulator, caplog):
    caplog.set_level(logging.INFO, logger="langchain_chatchat.access")
    with client_for(emulator) as client:
        response = client.post(
            "/v1/chat/completions?api_key=from-query",
            json={"model": "qwen-plus", "messages": HI, "stream": True},
            headers={"X-Request-ID": "trace-42"},
        )
        denied = client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
    assert response.headers["x-request-id"] == "trace-42"
    assert len(denied.headers["x-request-id"]) == 32  # made up, on errors too
    lines = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "langchain_chatchat.access"
    ]
    served, refused = lines
    assert served == {
        "request_id": "trace-42",
        "method": "POST",
        "path": "/v1/chat/completions",  # never the query string (it may hold a key)
        "status": 200,
        "duration_ms": served["duration_ms"],
        "client": "127.0.0.1",
        "model": "qwen-plus",
        "replica": "0:qwen",
    }
    assert served["duration_ms"] > 0
    assert (refused["status"], refused["request_id"]) == (401, denied.headers["x-request-id"])


def test_access_log_can_be_turned_off(emulator, caplog):
    caplog.set_level(logging.INFO, logger="langchain_chatchat.access")
    with client_for(emulator, access_log=False) as client:
        client.get("/v1/models")
    assert not [r for r in caplog.records if r.name == "langchain_chatchat.access"]


@pytest.mark.parametrize("header", ["not valid!", "x" * 129])
def test_insane_request_ids_are_replaced(emulator, header):
    with client_for(emulator) as client:
        response = client.post(
            "/qwen-plus/invoke", json={"input": "hi"}, headers={"X-Request-ID": header}
        )
    assert (
        response.headers["x-request-id"] != header and len(response.headers["x-request-id"]) == 32
    )
