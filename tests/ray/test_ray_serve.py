"""The app on Ray Serve: the same routes through the Ray hop, failover, autoscaling, secrets.

One loopback-only Ray cluster for the module (checked: node address, sockets); one application, deployed once, with:
`qwen-plus` (2 replicas, one request at a time each), `qwen-limited` (1 replica, 1 request at a time, no queue),
`qwen-auto` (autoscaling 1..2), `embed` (embeddings, 1 replica) and `qwen-inline` (no `ray:`
section: it runs inside the ingress). Every replica asks for 0.25 CPU.
"""

from __future__ import annotations

import asyncio
import glob
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import psutil
import pytest
from langserve import RemoteRunnable

from langchain_chatchat.testing import DashScopeEmulator, Fault, Reply, ToolCallReply

ray = pytest.importorskip("ray", reason="the `ray` extra is not installed")
serve = pytest.importorskip("ray.serve")
cloudpickle = pytest.importorskip("ray.cloudpickle")

pytestmark = pytest.mark.timeout(600)

KEY_ENV = "CHATCHAT_RAY_TEST_QWEN_KEY"
SECRET = "sk-ray-" + secrets.token_hex(16)
SMALL = {"num_cpus": 0.25}


# -- one loopback-only Ray cluster for the module ---------------------------------------------
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Cluster:
    url: str
    """Serve's HTTP proxy."""
    temp_dir: str
    """Ray's session files and logs."""


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    """Start Ray (2 CPUs, no dashboard) and Serve's HTTP proxy on 127.0.0.1."""
    assert not ray.is_initialized(), "a Ray cluster is already connected in this process"
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp_dir,
        log_to_driver=False,
    )
    try:
        addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
        assert addresses == {"127.0.0.1"}, f"Ray registered a non-loopback node: {addresses}"
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield Cluster(f"http://127.0.0.1:{port}", temp_dir)
    finally:
        serve.shutdown()
        ray.shutdown()  # stops the processes this init started, and only those
        shutil.rmtree(temp_dir, ignore_errors=True)


def ray_processes() -> list[psutil.Process]:
    """The processes of the cluster this test process started (its descendants)."""
    return psutil.Process().children(recursive=True)


def outside_loopback() -> list[str]:
    """Sockets of our Ray processes bound or connected outside 127.0.0.0/8.

    Ray Serve 2.60 binds each replica's inter-deployment gRPC server to `[::]:0` with no
    setting to change it (`ray/serve/_private/replica.py`); that listening socket is reported
    separately by `wildcard_listeners` and must carry no connection from outside.
    """
    found = []
    for process in ray_processes():
        try:
            connections = process.net_connections("inet")
        except psutil.Error:
            continue
        for connection in connections:
            if connection.status == psutil.CONN_LISTEN and _wildcard(connection.laddr.ip):
                continue
            for address in (connection.laddr, connection.raddr):
                if address and not _loopback(address.ip):
                    found.append(f"{process.name()}[{process.pid}] {connection}")
    return found


def wildcard_listeners() -> list[str]:
    """Listening sockets on all interfaces, with the process that holds them."""
    found = []
    for process in ray_processes():
        try:
            connections = process.net_connections("inet")
        except psutil.Error:
            continue
        found += [
            f"{process.name()}:{connection.laddr.port}"
            for connection in connections
            if connection.status == psutil.CONN_LISTEN and _wildcard(connection.laddr.ip)
        ]
    return found


def _wildcard(ip: str) -> bool:
    return ip in ("0.0.0.0", "::")


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@pytest.fixture(scope="module")
def emulator() -> Iterator[DashScopeEmulator]:
    # The key is in the environment before Ray starts, so every Ray worker inherits it.
    os.environ[KEY_ENV] = SECRET
    with DashScopeEmulator(api_key=SECRET) as running:
        yield running


def _qwen(emulator: DashScopeEmulator, name: str, **entry: Any) -> dict[str, Any]:
    params = {"model": "qwen-plus", "api_key": f"${{{KEY_ENV}}}", "base_url": emulator.base_url}
    return {"name": name, "provider": "qwen", "params": {**params, "max_retries": 0}, **entry}


def app_config(emulator: DashScopeEmulator) -> dict[str, Any]:
    return {
        "models": [
            _qwen(
                emulator,
                "qwen-plus",
                ray={"num_replicas": 2, "max_ongoing_requests": 1, "ray_actor_options": SMALL},
            ),
            _qwen(
                emulator,
                "qwen-limited",
                max_concurrency=1,
                max_queue=0,
                ray={"num_replicas": 1, "ray_actor_options": SMALL},
            ),
            _qwen(
                emulator,
                "qwen-auto",
                ray={
                    "autoscaling_config": {
                        "min_replicas": 1,
                        "max_replicas": 2,
                        "target_ongoing_requests": 1,
                        "upscale_delay_s": 0.5,
                        "downscale_delay_s": 2,
                        "metrics_interval_s": 0.5,
                        "look_back_period_s": 1,
                    },
                    "ray_actor_options": SMALL,
                },
            ),
            {
                **_qwen(emulator, "embed", kind="embeddings"),
                "params": {
                    "model": "text-embedding-v3",
                    "api_key": f"${{{KEY_ENV}}}",
                    "base_url": emulator.base_url,
                },
                "ray": {"num_replicas": 1, "ray_actor_options": SMALL},
            },
            _qwen(emulator, "qwen-inline"),
        ]
    }


@pytest.fixture(scope="module")
def url(emulator: DashScopeEmulator, ray_cluster: Cluster) -> str:
    from langchain_chatchat.server.ray import APP_NAME, build_app

    application = build_app(
        {"config": app_config(emulator), "ingress": {"ray_actor_options": SMALL}}
    )
    serve.run(application, name=APP_NAME, route_prefix="/")
    return ray_cluster.url


@pytest.fixture
def upstream(emulator: DashScopeEmulator) -> Iterator[DashScopeEmulator]:
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def _replica_pids(deployment: str) -> list[int]:
    return [
        process.pid
        for process in ray_processes()
        if f"ServeReplica:chatchat:{deployment}" in " ".join(_cmdline(process))
    ]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _running_replicas(deployment: str) -> int:
    status = serve.status().applications["chatchat"].deployments[deployment]
    return status.replica_states.get("RUNNING", 0)


def _wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


# -- the routes, unchanged -------------------------------------------------------------------------
def test_openai_routes_through_ray(client, upstream):
    upstream.enqueue(Reply(text="through the Ray hop"))
    reply = client.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "through the Ray hop"
    assert reply.usage.total_tokens > 0
    upstream.enqueue(Reply(text="one two three four five six", chunk_delay=0.01))
    chunks = list(
        client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five six"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_tools_through_ray(client, upstream):
    upstream.enqueue(Reply(tool_calls=[ToolCallReply("get_weather", {"city": "Paris"})]))
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    reply = client.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": "weather?"}], tools=[tool]
    )
    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and '"Paris"' in call.function.arguments
    assert reply.choices[0].finish_reason == "tool_calls"
    assert upstream.requests[-1].body["parameters"]["tools"][0]["function"]["name"] == "get_weather"


def test_embeddings_through_ray(client, upstream):
    result = client.embeddings.create(model="embed", input=["a", "b"])
    assert [item.index for item in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 1024 and result.usage.prompt_tokens > 0


def test_langserve_routes_through_ray(url, upstream):
    remote = RemoteRunnable(f"{url}/qwen-plus")
    upstream.enqueue(Reply(text="langserve invoke"))
    assert remote.invoke("hi").content == "langserve invoke"
    upstream.enqueue(Reply(text="langserve stream", chunk_delay=0.01))
    assert "".join(chunk.content for chunk in remote.stream("hi")) == "langserve stream"
    upstream.enqueue(Reply(text="events"))

    async def events() -> list[str]:
        return [event["event"] async for event in remote.astream_events("hi", version="v2")]

    kinds = asyncio.run(events())
    assert "on_chat_model_stream" in kinds and kinds[-1] == "on_chat_model_end"


def test_an_entry_without_ray_section_runs_in_the_ingress(client, upstream):
    upstream.enqueue(Reply(text="inline"))
    reply = client.chat.completions.create(
        model="qwen-inline", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "inline"
    assert "model-qwen-inline" not in serve.status().applications["chatchat"].deployments


def test_one_request_id_header_carried_into_the_replica(url, ray_cluster, upstream):
    upstream.enqueue(Reply(text="logged"))
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Request-ID": "ray-test-request-1"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == ["ray-test-request-1"]
    logs_dir = os.path.join(ray_cluster.temp_dir, "session_latest", "logs", "serve")

    def logged() -> bool:
        for path in glob.glob(os.path.join(logs_dir, "replica_chatchat_model-qwen-plus_*.log")):
            with open(path, encoding="utf-8", errors="replace") as log:
                text = log.read()
            if "ray-test-request-1" in text and '"model": "qwen-plus"' in text:
                return True
        return False

    _wait(logged, 20, "the model replica's access-log line with the request id")


# -- errors through the hop ------------------------------------------------------------------------
def test_an_upstream_429_stays_429(client, upstream):
    upstream.enqueue(Fault.http(429, "Throttling.RateQuota", "Requests rate limit exceeded"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 429
    upstream.enqueue(Fault.http(400, "InvalidParameter", "bad thing"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": "hi"}]
        )


def test_a_full_replica_answers_429_with_retry_after(url, upstream):
    upstream.enqueue(Reply(text="slow", first_chunk_delay=3))
    body = {"model": "qwen-limited", "messages": [{"role": "user", "content": "hi"}]}
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, f"{url}/v1/chat/completions", json=body, timeout=60)
        _wait(lambda: len(upstream.requests) == 1, 20, "the first request upstream")
        busy = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        assert slow.result().status_code == 200
    assert busy.status_code == 429, busy.text
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["code"] == "model_at_capacity"


# -- replicas dying --------------------------------------------------------------------------------
def test_a_dead_replica_is_retried_on_another_before_the_first_chunk(client, upstream):
    # qwen-plus replicas take one request at a time, so two requests keep both busy.
    upstream.enqueue(
        Reply(text="slow", first_chunk_delay=3),
        Reply(text="slow", first_chunk_delay=3),
        Reply(text="from the survivor"),
    )
    pids = _replica_pids("model-qwen-plus")
    assert len(pids) == 2

    def ask() -> str:
        messages = [{"role": "user", "content": "hi"}]
        reply = client.chat.completions.create(model="qwen-plus", messages=messages)
        return reply.choices[0].message.content

    with ThreadPoolExecutor(2) as pool:
        pending = [pool.submit(ask) for _ in range(2)]
        _wait(lambda: len(upstream.requests) == 2, 20, "both replicas calling the upstream")
        os.kill(pids[0], signal.SIGKILL)
        answers = sorted(future.result(timeout=60) for future in pending)
    assert answers == ["from the survivor", "slow"]
    assert len(upstream.requests) == 3
    assert sum(request.disconnected_at is not None for request in upstream.requests) == 1
    _wait(lambda: _running_replicas("model-qwen-plus") == 2, 120, "Serve to replace the replica")


def test_killing_a_replica_under_load_loses_no_unstarted_request(client, upstream):
    _wait(lambda: len(_replica_pids("model-qwen-plus")) == 2, 120, "two replicas")
    total = 24
    upstream.enqueue(*[Reply(text=f"r{i}", first_chunk_delay=0.4) for i in range(total * 2)])

    def ask(index: int) -> str:
        reply = client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": f"q{index}"}],
            stream=index % 2 == 1,
        )
        if index % 2:
            return "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
        return reply.choices[0].message.content

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask, index) for index in range(total)]
        _wait(lambda: len(upstream.requests) >= 8, 30, "load on both replicas")
        os.kill(_replica_pids("model-qwen-plus")[0], signal.SIGKILL)
        answers = [future.result(timeout=120) for future in futures]
    assert all(answer.startswith("r") for answer in answers)
    assert len(answers) == total
    _wait(lambda: _running_replicas("model-qwen-plus") == 2, 120, "Serve to replace the replica")


# -- autoscaling, cancellation -----------------------------------------------------------------
def test_autoscaling_up_under_load_and_down_after(client, upstream):
    assert _running_replicas("model-qwen-auto") == 1
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            upstream.enqueue(Reply(text="busy", first_chunk_delay=0.5))
            client.chat.completions.create(
                model="qwen-auto", messages=[{"role": "user", "content": "hi"}]
            )

    with ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(keep_busy) for _ in range(4)]
        try:
            _wait(lambda: _running_replicas("model-qwen-auto") == 2, 90, "a second replica")
        finally:
            stop.set()
        for worker in workers:
            worker.result(timeout=60)
    _wait(lambda: _running_replicas("model-qwen-auto") == 1, 90, "scaling back down to one")


def test_a_client_that_leaves_cancels_the_upstream_call(url, upstream):
    upstream.enqueue(Reply(text="tick " * 40, chunk_delay=0.25))
    body = {
        "model": "qwen-plus",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break  # one chunk, then hang up
    _wait(lambda: upstream.requests[0].disconnected_at is not None, 15, "the upstream to be closed")


def test_replica_metrics_are_exported_by_ray(client, upstream):
    upstream.enqueue(Reply(text="counted"))
    client.chat.completions.create(
        model="qwen-limited", messages=[{"role": "user", "content": "hi"}]
    )
    (port,) = {node["MetricsExportPort"] for node in ray.nodes()}

    def exported() -> bool:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return (
            any(
                line.startswith("ray_chatchat_replica_requests")
                and 'model="qwen-limited"' in line
                and 'outcome="ok"' in line
                for line in text.splitlines()
            )
            and "ray_chatchat_replica_tokens" in text
        )

    _wait(exported, 60, "the replica's counters on Ray's metrics port")


# -- what travels through Ray ------------------------------------------------------------------
def test_secrets_are_not_pickled_into_the_application(emulator):
    from langchain_chatchat.server.ray import build_app

    application = build_app({"config": app_config(emulator)})
    shipped = cloudpickle.dumps(application)
    assert f"${{{KEY_ENV}}}".encode() in shipped  # the reference travels...
    assert SECRET.encode() not in shipped  # ...never its value


def test_ray_stays_on_loopback(url):
    assert outside_loopback() == []
    # Ray Serve's per-replica gRPC server binds [::]:0 (not configurable in 2.60); it must be
    # those replicas' only wildcard listener, and nothing else may listen on all interfaces.
    assert all(name.startswith("ray::ServeRepl") for name in wildcard_listeners())
