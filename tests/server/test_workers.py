"""`chatchat serve --workers N`: real processes on loopback, and the config split they run on."""

from __future__ import annotations

import os
import signal
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

from langchain_chatchat.server.config import ConfigError, load_config
from langchain_chatchat.server.workers import gateway_config, is_local, model_process_config
from langchain_chatchat.testing import DashScopeEmulator, Reply
from tests.server.conftest import qwen_params
from tests.server.test_cli import PROJECT_ROOT, free_port, wait_until_up

KEY = "sk-workers-test-0123456789"


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
            if "resource_tracker" not in " ".join(child.cmdline())
        ]
        if len(children) >= count:
            return children
        time.sleep(0.2)
    raise AssertionError(f"expected {count} child processes, got {children}")


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
