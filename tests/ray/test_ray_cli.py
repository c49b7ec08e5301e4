"""`chatchat serve --ray` as a real subprocess: it starts its own local Ray (loopback only),
serves the config through Serve, and takes every Ray process it started down on Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai
import psutil
import pytest
import yaml

from langchain_chatchat.testing import DashScopeEmulator, Reply

pytest.importorskip("ray.serve", reason="the `ray` extra is not installed")
pytestmark = pytest.mark.timeout(600)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chatchat_serve_ray(tmp_path: Path, dashscope_emulator: DashScopeEmulator):
    config = {
        "models": [
            {
                "name": "qwen-plus",
                "provider": "qwen",
                "params": {
                    "model": "qwen-plus",
                    "api_key": "${CHATCHAT_RAY_CLI_KEY}",
                    "base_url": dashscope_emulator.base_url,
                    "max_retries": 0,
                },
                "ray": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.25}},
            }
        ]
    }
    path = tmp_path / "chatchat.yaml"
    path.write_text(yaml.safe_dump(config))
    port = _free_port()
    ray_tmp = tempfile.mkdtemp(prefix="rayc-", dir="/tmp")  # short: Ray's socket paths
    process = subprocess.Popen(
        [sys.executable, "-c", "from langchain_chatchat.cli import app; app()"]
        + ["serve", "--ray", "-c", str(path), "--port", str(port), "--log-level", "warning"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "CHATCHAT_RAY_CLI_KEY": dashscope_emulator.api_key,
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray's node address: 127.0.0.1
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_TMPDIR": ray_tmp,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = psutil.Process(process.pid)
    descendants: list[psutil.Process] = []
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=30
        )
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, f"chatchat serve --ray exited with {process.returncode}"
            try:
                if [model.id for model in client.models.list()] == ["qwen-plus"]:
                    break
            except (openai.APIConnectionError, openai.NotFoundError, openai.InternalServerError):
                pass
            assert time.monotonic() < deadline, "the Serve application did not come up"
            time.sleep(1)
        dashscope_emulator.enqueue(Reply(text="from chatchat serve --ray"))
        reply = client.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "from chatchat serve --ray"
        descendants = started.children(recursive=True)
        assert descendants, "Ray's processes should run under the CLI process"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        _, alive = psutil.wait_procs(descendants, timeout=60)
        assert alive == [], f"left running after Ctrl-C: {alive}"
    finally:
        for child in [started, *descendants]:  # only what this test started, by PID
            if child.is_running():
                child.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
