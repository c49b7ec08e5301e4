"""Replicas: config, least-busy dispatch, per-replica limits, the bounded queue (429), passive
health, failover before the first chunk, model fallbacks, LangServe replicas — and that the
OpenAI router and the LangServe routes share one dispatcher.

Two OpenAI-compatible emulators (A and B) stand in for two upstream servers; each test gets a
fresh app (pools keep health state) on top of them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import yaml

from langchain_chatchat import ChatOpenAICompatible, ChatQwen
from langchain_chatchat.server import ConfigError, create_app, load_config
from langchain_chatchat.server import config as config_module
from langchain_chatchat.server.metrics import Metrics
from langchain_chatchat.server.pool import Replica, ReplicaPool
from langchain_chatchat.server.registry import ModelRegistry
from langchain_chatchat.testing import (
    BackgroundServer,
    Fault,
    OpenAICompatibleEmulator,
    Reply,
)
from langchain_chatchat.workers.errors import RateLimitError
from tests.server.conftest import API_KEY, qwen_params

HI = [{"role": "user", "content": "hi"}]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[OpenAICompatibleEmulator, OpenAICompatibleEmulator]]:
    with OpenAICompatibleEmulator() as a, OpenAICompatibleEmulator() as b:
        yield a, b


@pytest.fixture
def a_b(upstreams):
    for emulator in upstreams:
        emulator.reset()
    yield upstreams
    for emulator in upstreams:
        emulator.reset()


def remote(emulator: OpenAICompatibleEmulator, **extra: Any) -> dict[str, Any]:
    """A replica that is another OpenAI-compatible server."""
    params = {"model": "m", "api_key": emulator.api_key, "max_retries": 0}
    return {"url": emulator.base_url, "params": params, **extra}


@contextmanager
def serving(*models: dict[str, Any]) -> Iterator[str]:
    app = create_app({"server": {"api_keys": [API_KEY]}, "models": list(models)})
    with BackgroundServer(app) as server:
        yield server.url


def chat(url: str, model: str = "pair", **body: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": HI, **body},
        headers=AUTH,
        timeout=10,
    )


def text_of(response: httpx.Response) -> str:
    """The reply's text, streamed or not."""
    if not response.headers["content-type"].startswith("text/event-stream"):
        return response.json()["choices"][0]["message"]["content"]
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: {")]
    return "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


# -- config ---------------------------------------------------------------------------------------
def test_a_plain_entry_is_one_replica_and_replicas_inherit_only_their_own_providers_params(
    monkeypatch,
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    registry = ModelRegistry.from_config(
        load_config(
            {
                "models": [
                    {"name": "plain", "provider": "qwen", "params": {"api_key": "k"}},
                    {
                        "name": "many",
                        "provider": "qwen",
                        "params": {"api_key": "k1", "model": "qwen-max"},
                        "max_concurrency": 4,
                        "replicas": [
                            {},
                            {"params": {"api_key": "k2"}, "max_concurrency": 2},
                            {"url": "http://gpu:8000/v1", "params": {"model": "qwen2.5"}},
                        ],
                    },
                ]
            }
        )
    )
    (plain,) = registry.get("plain").pool.replicas
    assert (plain.label, plain.limit, type(plain.model)) == ("0:qwen", None, ChatQwen)
    first, second, third = registry.get("many").pool.replicas
    assert [r.label for r in (first, second, third)] == ["0:qwen", "1:qwen", "2:http://gpu:8000/v1"]
    assert [r.limit for r in (first, second, third)] == [4, 2, 4]
    assert (first.model.model, first.model.api_key.get_secret_value()) == ("qwen-max", "k1")
    assert (second.model.model, second.model.api_key.get_secret_value()) == ("qwen-max", "k2")
    assert isinstance(third.model, ChatOpenAICompatible)
    assert (third.model.model, third.model.base_url) == ("qwen2.5", "http://gpu:8000/v1")
    assert third.model.api_key is None  # the qwen key is never sent to another server


def test_the_documented_example_config_loads(monkeypatch):
    for variable in ("DASHSCOPE_API_KEY", "KEY_2", "OTHER_KEY"):
        monkeypatch.setenv(variable, "k")
    doc = config_module.__doc__ or ""
    block = doc[doc.index("    server:") : doc.index("A replica using")]
    raw = yaml.safe_load("\n".join(line[4:] for line in block.splitlines()))
    raw["models"].append({"name": "qwen-turbo", "provider": "qwen", "params": {"api_key": "k"}})
    served = ModelRegistry.from_config(load_config(raw)).get("qwen-plus")
    assert len(served.pool.replicas) == 5 and served.fallbacks


def test_timeouts_map_onto_each_transport():
    registry = ModelRegistry.from_config(
        load_config(
            {
                "models": [
                    {
                        "name": "m",
                        "replicas": [{"url": "http://gpu:8000/v1"}],
                        "timeout": {"connect": 2, "read": 300},
                    }
                ]
            }
        )
    )
    model = registry.get("m").model
    assert model.timeout == 300  # per read: a long generation that keeps streaming is never cut
    transport = model.worker.transport
    assert (transport.connect_timeout, transport.timeout) == (2, 300)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "m"}, 'models[0] "m": `provider` is required'),
        ({"name": "m", "replicas": [{}]}, "replicas[0] needs a `provider` or a `url`"),
        (
            {"name": "m", "replicas": [{"url": "http://x/v1", "provider": "qwen"}]},
            "either `url` (with `protocol`) or `provider`",
        ),
        ({"name": "m", "replicas": [{"url": "x/v1"}]}, "must start with http://"),
        (
            {"name": "m", "replicas": [{"provider": "qwenn"}]},
            'models[0] "m".replicas[0].provider: unknown provider',
        ),
        (
            {"name": "m", "provider": "qwen", "fallbacks": ["nope"]},
            "'nope' is not a chat model of this config",
        ),
        ({"name": "m", "provider": "qwen", "fallbacks": ["m"]}, "cannot be its own fallback"),
        (
            {"name": "m", "provider": "qwen", "kind": "embeddings", "fallbacks": ["x"]},
            "only supported for chat models",
        ),
        ({"name": "m", "provider": "qwen", "max_concurrency": 0}, "greater than or equal to 1"),
    ],
)
def test_replica_config_errors_name_the_entry(entry, message):
    with pytest.raises(ConfigError) as caught:
        load_config({"models": [entry]})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {
                "name": "m",
                "provider": "qwen",
                "params": {"api_key": "k"},
                "timeout": {"connect": 1},
            },
            'models[0] "m": timeout.connect is not supported by ChatQwen',
        ),
        (
            {
                "name": "m",
                "replicas": [
                    {"url": "http://x/m", "protocol": "langserve", "params": {"api_key": "k"}}
                ],
            },
            'models[0] "m".replicas[0].params: a LangServe replica takes only `headers`',
        ),
        (
            {
                "name": "m",
                "kind": "embeddings",
                "replicas": [{"url": "http://x/m", "protocol": "langserve"}],
            },
            "LangServe replicas can serve chat models only",
        ),
        (
            {"name": "m", "replicas": [{"url": "http://x/v1", "params": {"temprature": 1}}]},
            'models[0] "m".replicas[0].params: ChatOpenAICompatible has no parameter(s) temprature',
        ),
    ],
)
def test_replica_construction_errors_name_the_replica(entry, message):
    with pytest.raises(ConfigError) as caught:
        ModelRegistry.from_config(load_config({"models": [entry]}))
    assert message in str(caught.value)


# -- dispatch, limits and the queue --------------------------------------------------------------
async def test_least_busy_replica_then_queue_then_429_with_retry_after(a_b):
    a, b = a_b
    a.enqueue(Reply(text="from a", first_chunk_delay=0.6))
    b.enqueue(Reply(text="from b", first_chunk_delay=0.6))
    pair = {
        "name": "pair",
        "replicas": [remote(a), remote(b)],
        "max_concurrency": 1,
        "max_queue": 1,
    }
    with serving(pair) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client:

            def post() -> asyncio.Task[httpx.Response]:
                body = {"model": "pair", "messages": HI}
                return asyncio.create_task(client.post("/v1/chat/completions", json=body))

            first = post()
            await asyncio.to_thread(wait_for, lambda: len(a.requests) == 1)
            second = post()  # A is busy: the least-busy replica is B
            await asyncio.to_thread(wait_for, lambda: len(b.requests) == 1)
            third = post()  # both full: waits in the queue (one place)
            await asyncio.sleep(0.1)
            refused = await client.post(
                "/v1/chat/completions", json={"model": "pair", "messages": HI}
            )
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "model_at_capacity"
            assert refused.json()["error"]["type"] == "rate_limit_error"
            replies = await asyncio.gather(first, second, third)
    texts = [r.json()["choices"][0]["message"]["content"] for r in replies]
    assert texts[:2] == ["from a", "from b"]
    assert texts[2] == "Hello! You said: hi"  # served once a slot was free
    assert len(a.requests) + len(b.requests) == 3


async def test_queued_request_times_out_with_429():
    pool = _pool(limit=1, queue_timeout=0.05)
    gate = asyncio.Event()
    holder = asyncio.create_task(pool.call(lambda replica: gate.wait()))
    await asyncio.sleep(0)
    with pytest.raises(RateLimitError) as caught:
        await pool.call(_answer)
    assert caught.value.retry_after == 1.0 and pool.queued == 0
    gate.set()
    await holder
    assert pool.replicas[0].in_flight == 0


async def test_a_waiter_that_leaves_frees_its_place_and_slots_go_in_order():
    pool = _pool(limit=1)
    gate = asyncio.Event()
    holder = asyncio.create_task(pool.call(lambda replica: gate.wait()))
    await asyncio.sleep(0)
    leaving = asyncio.create_task(pool.call(_answer))
    staying = [asyncio.create_task(pool.call(_answer)) for _ in range(2)]
    await asyncio.sleep(0)
    assert pool.queued == 3
    leaving.cancel()
    await asyncio.sleep(0)
    assert pool.queued == 2
    gate.set()
    assert await asyncio.gather(holder, *staying) == [True, "answer", "answer"]
    assert (pool.replicas[0].in_flight, pool.queued) == (0, 0)


async def test_load_is_relative_to_each_replicas_limit():
    pool = _pool(limit=1, extra_limits=(4,))
    small, big = pool.replicas
    gate = asyncio.Event()
    running = [
        asyncio.create_task(pool.call(lambda replica: _hold(replica, gate))) for _ in range(5)
    ]
    await asyncio.sleep(0)
    assert (small.in_flight, big.in_flight) == (1, 4)
    gate.set()
    assert sorted(await asyncio.gather(*running)) == ["0", "1", "1", "1", "1"]


# -- health, failover, fallbacks -----------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_failure_before_any_output_fails_over_then_the_replica_cools_down(a_b, stream):
    a, b = a_b
    health = {"max_failures": 2, "cooldown": 0.5}
    pair = {"name": "pair", "replicas": [remote(a), remote(b)], "health": health}
    with serving(pair) as url:
        for _ in range(2):  # A fails twice (502, 503): each request is answered by B
            a.enqueue(Fault.http(503, "overloaded", "try later"))
            assert text_of(chat(url, stream=stream)) == "Hello! You said: hi"
        assert (len(a.requests), len(b.requests)) == (2, 2)
        chat(url, stream=stream)  # A is cooling down: B only
        assert (len(a.requests), len(b.requests)) == (2, 3)
        metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
        assert 'chatchat_replica_healthy{model="pair",replica="0:http://127.0.0.1' in metrics
        assert _sample(metrics, "chatchat_replica_healthy", 'replica="0:') == 0.0
        assert (
            _sample(metrics, "chatchat_upstream_errors_total", 'error="UpstreamServerError"') == 2
        )
        time.sleep(0.6)  # cooled down: A takes traffic again, and its success heals it
        chat(url, stream=stream)
        assert len(a.requests) == 3
        metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
        assert _sample(metrics, "chatchat_replica_healthy", 'replica="0:') == 1.0


def test_the_last_healthy_replica_is_never_taken_out(a_b):
    a, _ = a_b
    single = {"name": "single", "replicas": [remote(a)], "health": {"max_failures": 1}}
    with serving(single) as url:
        a.enqueue(
            Fault.http(503, "overloaded", "try later"), Fault.http(503, "overloaded", "again")
        )
        assert chat(url, "single").status_code == 503  # the upstream's own error, typed
        assert chat(url, "single").status_code == 503
        assert chat(url, "single").status_code == 200  # still tried, not a synthetic outage
        assert len(a.requests) == 3


def test_failure_mid_stream_is_reported_in_band_not_retried(a_b):
    a, b = a_b
    a.enqueue(Fault.stream_error(2, "server_error", "boom"))
    with serving({"name": "pair", "replicas": [remote(a), remote(b)]}) as url:
        response = chat(url, stream=True)
    assert response.status_code == 200
    assert '"error"' in response.text and "[DONE]" not in response.text
    assert (len(a.requests), len(b.requests)) == (1, 0)  # B would repeat the first chunks


def test_request_errors_do_not_fail_over(a_b):
    a, b = a_b
    a.enqueue(Fault.http(400, "invalid_request_error", "bad messages"))
    with serving({"name": "pair", "replicas": [remote(a), remote(b)]}) as url:
        assert chat(url).status_code == 400
    assert (len(a.requests), len(b.requests)) == (1, 0)


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_model_answers_when_the_primary_cannot(a_b, stream):
    a, b = a_b
    a.enqueue(Fault.http(503, "overloaded", "try later"))
    b.enqueue(Reply(text="from the fallback"))
    primary = {"name": "primary", "replicas": [remote(a)], "fallbacks": ["secondary"]}
    with serving(primary, {"name": "secondary", "replicas": [remote(b)]}) as url:
        assert text_of(chat(url, "primary", stream=stream)) == "from the fallback"
        b.enqueue(Fault.http(400, "invalid_request_error", "no"))
        assert chat(url, "primary").status_code == 200  # primary healthy again: B not asked
        assert len(b.requests) == 1


# -- one dispatcher for both protocols; LangServe replicas ---------------------------------------
def test_langserve_and_openai_routes_share_one_pool(a_b):
    a, _ = a_b
    solo = {"name": "solo", "replicas": [remote(a)], "max_concurrency": 1, "max_queue": 0}
    routes = {
        "langserve": ("/solo/invoke", {"input": "hi"}),
        "openai": ("/v1/chat/completions", {"model": "solo", "messages": HI}),
    }
    with serving(solo) as url, httpx.Client(base_url=url, headers=AUTH, timeout=10) as client:
        for holder, other in (("langserve", "openai"), ("openai", "langserve")):
            a.enqueue(Reply(text="slow", first_chunk_delay=0.5))
            holding, busy = _while_holding(client, a, routes[holder], routes[other])
            assert (holding.status_code, busy.status_code) == (200, 429), holder


def _while_holding(
    client: httpx.Client,
    upstream: OpenAICompatibleEmulator,
    holder: tuple[str, dict[str, Any]],
    other: tuple[str, dict[str, Any]],
) -> tuple[httpx.Response, httpx.Response]:
    """Post `other` while `holder` is being answered upstream; both responses."""
    seen = len(upstream.requests)
    with ThreadPoolExecutor(1) as executor:
        holding = executor.submit(client.post, holder[0], json=holder[1])
        wait_for(lambda: len(upstream.requests) == seen + 1)
        busy = client.post(other[0], json=other[1])
        return holding.result(), busy


def test_a_langserve_replica_relays_messages_and_refuses_parameters(server_url, emulator):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    relay = {
        "name": "relay",
        "replicas": [
            {
                "url": f"{server_url}/qwen-plus",
                "protocol": "langserve",
                "params": {"headers": headers},
            }
        ],
    }
    with serving(relay) as url:
        assert text_of(chat(url, "relay")) == "Hello! You said: hi"
        assert text_of(chat(url, "relay", stream=True)) == "Hello! You said: hi"
        refused = chat(url, "relay", temperature=0.2)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "temperature"
        emulator.enqueue(Fault.http(429, "Throttling.RateQuota", "slow down"))
        assert chat(url, "relay").status_code == 429  # the upstream's status, typed on the way


def test_langserve_replica_unreachable_is_a_typed_502():
    dead = {"name": "dead", "replicas": [{"url": "http://127.0.0.1:9/m", "protocol": "langserve"}]}
    with serving(dead) as url:
        response = chat(url, "dead")
    assert response.status_code == 502
    assert response.json()["error"]["message"] == (
        "the LangServe replica could not be reached (ConnectError)"
    )


def test_qwen_replicas_share_the_session_emulator(emulator):
    """Provider replicas work like remote ones: two ChatQwen replicas of one name."""
    two = {
        "name": "two",
        "provider": "qwen",
        "params": qwen_params(emulator, "qwen-plus"),
        "replicas": [{}, {}],
    }
    with serving(two) as url:
        assert text_of(chat(url, "two")) == "Hello! You said: hi"


def test_python_callers_can_use_the_dispatchers_synchronously(emulator):
    """Sync calls take the least-busy healthy replica (no queue, no failover)."""
    registry = ModelRegistry.from_config(
        load_config(
            {
                "models": [
                    {"name": "c", "provider": "qwen", "params": qwen_params(emulator, "qwen-plus")},
                    {
                        "name": "e",
                        "provider": "qwen",
                        "kind": "embeddings",
                        "params": qwen_params(emulator, "text-embedding-v3"),
                    },
                ]
            }
        )
    )
    assert registry.get("c").runnable.invoke("hi").content == "Hello! You said: hi"
    assert len(registry.get("e").runnable.invoke(["a", "b"])) == 2


# -- helpers --------------------------------------------------------------------------------------
def _pool(
    limit: int, *, queue_timeout: float = 5.0, extra_limits: tuple[int, ...] = ()
) -> ReplicaPool:
    stats = Metrics().model("m")
    replicas = [
        Replica(index, str(index), object(), replica_limit, stats.replica(str(index)))
        for index, replica_limit in enumerate((limit, *extra_limits))
    ]
    return ReplicaPool("m", replicas, stats=stats, queue_timeout=queue_timeout)


async def _answer(replica: Replica) -> str:
    return "answer"


async def _hold(replica: Replica, gate: asyncio.Event) -> str:
    await gate.wait()
    return replica.label


def _sample(metrics: str, name: str, label: str) -> float:
    lines = [line for line in metrics.splitlines() if line.startswith(name + "{") and label in line]
    assert len(lines) == 1, lines
    return float(lines[0].rsplit(" ", 1)[1])
