"""`chatchat serve --workers N`: real processes on loopback, and the config split they run on."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
import yaml
from langserve import RemoteRunnable
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from langchain_chatchat.cli import app
from langchain_chatchat.server.config import ConfigError, load_config
from langchain_chatchat.server.metrics import SHARED_DIR_ENV
from langchain_chatchat.server.workers import (
    gateway_config,
    is_local,
    model_process_config,
    shared_metrics_dir,
)
from langchain_chatchat.testing import DashScopeEmulator, Reply
from tests.server.conftest import qwen_params
from tests.server.test_cli import PROJECT_ROOT, free_port, wait_until_up

KEY = "sk-workers-test-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _config(emulator: DashScopeEmulator, **qwen: Any) -> dict[str, Any]:
    return {
        "server": {"api_keys": [KEY]},
        "models": [
            {
                "name": "qwen-plus",
                "provider": "qwen",
                "params": qwen_params(emulator, "qwen-plus"),
                **qwen,
            }
        ],
    }


# -- the split -----------------------------------------------------------------------------------
def test_limits_are_divided_across_workers(dashscope_emulator):
    config = load_config(
        _config(
            dashscope_emulator,
            max_concurrency=9,
            max_queue=7,
            replicas=[{}, {"max_concurrency": 4}],
        )
    )
    entry = gateway_config(config, 2, None, None).models[0]
    assert (entry.max_concurrency, entry.max_queue) == (4, 3)
    assert [replica.max_concurrency for replica in entry.replicas] == [None, 2]
    assert gateway_config(config, 1, None, None).models[0].max_concurrency == 9


def test_a_limit_below_the_worker_count_is_a_config_error(dashscope_emulator):
    config = load_config(_config(dashscope_emulator, max_concurrency=2))
    with pytest.raises(ConfigError, match=r'models\[0\] "qwen-plus".max_concurrency: 2 cannot'):
        gateway_config(config, 3, None, None)


def test_max_connections_is_divided_across_workers(dashscope_emulator):
    config = load_config({**_config(dashscope_emulator), "server": {"max_connections": 9}})
    assert gateway_config(config, 2, None, None).server.max_connections == 4
    assert gateway_config(config, 1, None, None).server.max_connections == 9
    unlimited = load_config({**_config(dashscope_emulator), "server": {"max_connections": None}})
    assert gateway_config(unlimited, 4, None, None).server.max_connections is None
    with pytest.raises(ConfigError, match="server.max_connections: 9 cannot be divided across 10"):
        gateway_config(config, 10, None, None)


def test_local_entries_go_to_the_model_process(dashscope_emulator):
    config = load_config(
        {
            "models": [
                {
                    "name": "small",
                    "provider": "local",
                    "max_concurrency": 1,
                    "fallbacks": ["qwen-plus"],
                },
                _config(dashscope_emulator)["models"][0],
            ]
        }
    )
    assert [is_local(entry) for entry in config.models] == [True, False]
    served = model_process_config(config, "sk-inner")
    assert served is not None and [entry.name for entry in served.models] == ["small"]
    assert served.models[0].fallbacks == [] and served.models[0].max_concurrency == 1
    assert served.server.api_keys == ["sk-inner"] and served.server.host == "127.0.0.1"
    gateway = gateway_config(config, 4, "http://127.0.0.1:1234", "sk-inner").models[0]
    assert gateway.max_concurrency is None and gateway.fallbacks == ["qwen-plus"]
    (replica,) = gateway.replicas
    assert (replica.url, replica.protocol) == ("http://127.0.0.1:1234/v1", "openai")
    assert replica.params["api_key"] == "sk-inner" and replica.params["max_retries"] == 0


def _writer(file_name: str) -> int:
    """The pid in a prometheus_client value file's name (`counter_123.db`)."""
    return int(file_name.removesuffix(".db").rpartition("_")[2])


def test_each_run_gets_a_fresh_private_metrics_directory_removed_at_exit():
    with shared_metrics_dir() as first:
        info = os.stat(first)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        assert os.listdir(first) == []
        (Path(first) / "counter_1.db").write_bytes(b"\0" * 8)
    assert not os.path.exists(first)
    with shared_metrics_dir() as second:
        assert second != first and os.listdir(second) == []


def test_a_dead_gateways_gauges_are_dropped_and_its_counts_kept():
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead, alive = int(finished.stdout), os.getpid()
    files = [
        f"gauge_livesum_{dead}.db",
        f"gauge_liveall_{dead}.db",
        f"counter_{dead}.db",
        f"gauge_livesum_{alive}.db",
    ]
    with shared_metrics_dir() as directory:
        for name in files:
            (Path(directory) / name).write_bytes(b"\0" * 8)
        deadline = time.monotonic() + 10
        while f"gauge_livesum_{dead}.db" in os.listdir(directory):
            assert time.monotonic() < deadline, "the dead process's gauges stayed"
            time.sleep(0.1)
        assert sorted(os.listdir(directory)) == [f"counter_{dead}.db", f"gauge_livesum_{alive}.db"]


# -- real processes --------------------------------------------------------------------------------
def _start(config: dict[str, Any], tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    path = tmp_path / "chatchat.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from langchain_chatchat.cli import app; app()",
            "serve",
            "-c",
            str(path),
        ]
        + ["--port", str(port), "--log-level", "warning", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def _stop(process: subprocess.Popen) -> int:
    """SIGTERM the parent only (as a supervisor would); it must take its children down."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


@pytest.fixture
def served(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen] = []

    def start(config: dict[str, Any], *args: str) -> tuple[subprocess.Popen, str]:
        process, url = _start(config, tmp_path, *args)
        started.append(process)
        return process, url

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_children(process: subprocess.Popen, count: int) -> list[psutil.Process]:
    """The gateway and model processes under `process` (multiprocessing helpers aside)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = [
            child
            for child in psutil.Process(process.pid).children(recursive=True)
            if _serves(child)
        ]
        if len(children) >= count:
            return children
        time.sleep(0.2)
    raise AssertionError(f"expected {count} child processes, got {children}")


def _serves(child: psutil.Process) -> bool:
    try:
        return "resource_tracker" not in " ".join(child.cmdline())
    except psutil.Error:  # a killed gateway not reaped yet (a zombie), or gone
        return False


def _loads_torch(child: psutil.Process) -> bool:
    return any("libtorch" in mapping.path for mapping in child.memory_maps(grouped=True))


def test_two_gateways_share_the_port_and_stop_together(served, dashscope_emulator):
    process, url = served(_config(dashscope_emulator), "--workers", "2")
    wait_until_up(f"{url}/health", process)
    children = _wait_children(process, 2)
    assert len(children) == 2
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    for index in range(6):
        dashscope_emulator.enqueue(Reply(text=f"reply {index}"))
        reply = client.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == f"reply {index}"
    assert _stop(process) == 0
    for child in children:
        with pytest.raises(psutil.NoSuchProcess):
            child.wait(timeout=10)
            raise psutil.NoSuchProcess(child.pid)  # waited: it is gone


def test_server_limits_hold_in_every_gateway(served, dashscope_emulator):
    config = _config(dashscope_emulator)
    config["server"]["max_header_size"] = 2048
    process, url = served(config, "--workers", "2")
    wait_until_up(f"{url}/health", process)
    for _ in range(4):  # fresh connections: whichever gateway accepts must refuse
        with httpx.Client() as fresh:
            response = fresh.get(f"{url}/health", headers={"x-padding": "p" * 4096})
            assert response.status_code == 431


def test_both_gateways_take_requests(served, dashscope_emulator):
    process, url = served(_config(dashscope_emulator), "--workers", "2")
    wait_until_up(f"{url}/health", process)
    gateways = {child.pid for child in _wait_children(process, 2)}
    port = int(url.rsplit(":", 1)[1])
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while seen != gateways and time.monotonic() < deadline:
        with httpx.Client() as fresh:  # a new connection each time, held open while we look
            assert fresh.get(f"{url}/health").status_code == 200
            seen |= {
                connection.pid
                for connection in psutil.net_connections("tcp")
                if connection.laddr
                and connection.laddr.port == port
                and connection.status == psutil.CONN_ESTABLISHED
                and connection.pid in gateways
            }
    assert seen & gateways == gateways


def test_local_model_loads_in_one_model_process(served, dashscope_emulator, tmp_path):
    from tests.local.tiny_models import build_tiny_chat_model

    model_dir = build_tiny_chat_model(tmp_path / "tiny")
    config = _config(dashscope_emulator)
    config["models"].append(
        {
            "name": "tiny",
            "provider": "local",
            "params": {"model": str(model_dir), "max_batch_size": 2},
            "fallbacks": ["qwen-plus"],
        }
    )
    process, url = served(config, "--workers", "2")
    wait_until_up(f"{url}/ready", process, seconds=120)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "hello"}]
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=5, seed=1)
    assert reply.choices[0].message.content
    chunks = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=5, seed=1, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert streamed == reply.choices[0].message.content
    remote = RemoteRunnable(f"{url}/tiny", headers={"Authorization": f"Bearer {KEY}"})
    assert remote.invoke("hello").content
    children = _wait_children(process, 3)
    assert sum(_loads_torch(child) for child in children) == 1  # the model process alone
    assert _stop(process) == 0


def test_a_busy_port_fails_once_before_anything_starts(served, dashscope_emulator):
    blocker, url = served(_config(dashscope_emulator))
    wait_until_up(f"{url}/health", blocker)
    port = url.rsplit(":", 1)[1]
    process, _ = served(_config(dashscope_emulator), "--workers", "2", "--port", port)
    assert process.wait(timeout=60) == 2
    assert f"port {port} is in use; pass --port" in process.stderr.read()


def test_an_indivisible_limit_fails_at_start(served, dashscope_emulator):
    process, _ = served(_config(dashscope_emulator, max_concurrency=1), "--workers", "2")
    assert process.wait(timeout=60) == 2
    assert "cannot be divided across 2 worker processes" in process.stderr.read()


def test_a_max_connections_below_the_worker_count_fails_at_start(dashscope_emulator, tmp_path):
    config = _config(dashscope_emulator)
    config["server"]["max_connections"] = 1
    path = tmp_path / "chatchat.yaml"
    path.write_text(yaml.safe_dump(config))
    arguments = ["serve", "-c", str(path), "--port", str(free_port()), "--workers", "2"]
    result = CliRunner().invoke(app, arguments)  # fails in the checks, before any process
    assert result.exit_code == 2
    assert "server.max_connections: 1 cannot be divided across 2 worker processes" in (
        result.stderr
    )


# -- the whole server's limits and metrics, across gateways ----------------------------------------
def _connect(url: str, gateways: set[int]) -> tuple[http.client.HTTPConnection, int]:
    """A fresh connection to the server, and the gateway process that accepted it."""
    port = int(url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.connect()
    assert connection.sock is not None
    local = connection.sock.getsockname()[1]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for socket_ in psutil.net_connections("tcp"):
            if (
                socket_.pid in gateways
                and socket_.laddr.port == port
                and socket_.raddr
                and socket_.raddr.port == local
            ):
                return connection, socket_.pid
        time.sleep(0.05)
    raise AssertionError(f"no gateway accepted the connection from port {local}")


def _get(connection: http.client.HTTPConnection, path: str) -> int:
    connection.request("GET", path, headers=AUTH)
    response = connection.getresponse()
    response.read()
    return response.status


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one /metrics answer (on a fresh connection), by (name, labels)."""
    with httpx.Client() as fresh:
        text = fresh.get(f"{url}/metrics", headers=AUTH).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _healthy_pids(samples: dict) -> set[int]:
    return {
        int(dict(labels)["pid"]) for name, labels in samples if name == "chatchat_replica_healthy"
    }


def _poll(check, *args: Any, seconds: float = 10) -> None:
    """Until `check(*args)` holds (gauges of other gateways are up to a second old)."""
    deadline = time.monotonic() + seconds
    while not check(*args):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _all_report(url: str, gateways: set[int]) -> bool:
    return _healthy_pids(_scrape(url)) == gateways


def test_metrics_count_every_gateway_dead_ones_included(served, dashscope_emulator):
    process, url = served(_config(dashscope_emulator), "--workers", "2")
    wait_until_up(f"{url}/health", process)
    gateways = {child.pid for child in _wait_children(process, 2)}
    _poll(_all_report, url, gateways, seconds=60)  # both have built their app
    served_by: dict[int, int] = dict.fromkeys(gateways, 0)
    sent = 0
    while sent < 20 or 0 in served_by.values():  # until both gateways answered some
        assert sent < 200, f"requests never reached both gateways: {served_by}"
        connection, gateway = _connect(url, gateways)
        with contextlib.closing(connection):
            assert _get(connection, "/v1/models") == 200
        served_by[gateway] += 1
        sent += 1
    models = {"method": "GET", "route": "/v1/models"}
    for _ in range(6):  # whichever gateway answers reports the whole server
        samples = _scrape(url)
        assert _value(samples, "chatchat_http_requests_total", **models, status="200") == sent
        assert _value(samples, "chatchat_http_request_duration_seconds_count", **models) == sent
        assert _healthy_pids(samples) == gateways  # health: one series per live gateway
    (directory,) = {psutil.Process(pid).environ().get(SHARED_DIR_ENV) for pid in gateways}
    info = os.stat(directory)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    assert {_writer(name) for name in os.listdir(directory)} == gateways  # never the parent
    killed = max(served_by, key=served_by.__getitem__)
    os.kill(killed, signal.SIGKILL)  # uvicorn starts a replacement

    def replaced() -> bool:
        live = {child.pid for child in _wait_children(process, 2)} - {killed}
        return len(live) == 2 and _all_report(url, live)

    _poll(replaced, seconds=30)
    samples = _scrape(url)  # the dead gateway's counts stay in the total
    assert _value(samples, "chatchat_http_requests_total", **models, status="200") == sent
    assert _stop(process) == 0
    assert not os.path.exists(directory)


def test_in_flight_is_summed_over_gateways(served, dashscope_emulator):
    process, url = served(_config(dashscope_emulator), "--workers", "2")
    wait_until_up(f"{url}/health", process)
    gateways = {child.pid for child in _wait_children(process, 2)}
    _poll(_all_report, url, gateways, seconds=60)  # both have built their app
    body = '{"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}'
    headers = {**AUTH, "Content-Type": "application/json"}
    held: dict[http.client.HTTPConnection, int] = {}
    while set(held.values()) != gateways:  # a slow request in flight on each gateway
        assert len(held) < 40, "requests never reached both gateways"
        dashscope_emulator.enqueue(Reply(text="slow", first_chunk_delay=12))
        connection, gateway = _connect(url, gateways)
        connection.request("POST", "/v1/chat/completions", body, headers)  # answer read below
        held[connection] = gateway
    replica = {"model": "qwen-plus", "replica": "0:qwen"}
    _poll(lambda: _value(_scrape(url), "chatchat_replica_in_flight", **replica) == len(held))
    for connection in held:
        with contextlib.closing(connection):
            response = connection.getresponse()
            assert response.status == 200, response.read()
            response.read()
    _poll(lambda: _value(_scrape(url), "chatchat_replica_in_flight", **replica) == 0)
    assert _value(_scrape(url), "chatchat_model_queued", model="qwen-plus") == 0
    assert _stop(process) == 0


def test_max_connections_hold_for_the_whole_server(served, dashscope_emulator):
    config = _config(dashscope_emulator)
    config["server"].update(max_connections=4, keep_alive_timeout=60)  # 2 per gateway
    process, url = served(config, "--workers", "2")
    wait_until_up(f"{url}/health", process)
    gateways = {child.pid for child in _wait_children(process, 2)}
    kept: dict[int, int] = dict.fromkeys(gateways, 0)
    connections = []
    try:
        for _ in range(6):  # kept open: at least one gateway gets 3
            connection, gateway = _connect(url, gateways)
            connections.append(connection)
            status = _get(connection, "/health")
            if kept[gateway] < 2:
                assert status == 200
                kept[gateway] += 1
            else:
                assert status == 503  # uvicorn closes it: the gateway keeps its 2
    finally:
        for connection in connections:
            connection.close()
    assert _stop(process) == 0
