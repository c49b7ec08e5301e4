"""The `chatchat` CLI and `langchain serve` in the project root, as real subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from langserve import RemoteRunnable
from typer.testing import CliRunner

from langchain_chatchat.cli import app
from langchain_chatchat.testing import DashScopeEmulator, Reply
from tests.server.conftest import qwen_params

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def config_file(tmp_path: Path, emulator: DashScopeEmulator) -> Path:
    path = tmp_path / "chatchat.yaml"
    config = {
        "models": [
            {"name": "qwen-plus", "provider": "qwen", "params": qwen_params(emulator, "qwen-plus")},
            {
                "name": "embed",
                "provider": "qwen",
                "kind": "embeddings",
                "params": qwen_params(emulator, "text-embedding-v3"),
            },
        ]
    }
    path.write_text(yaml.safe_dump(config))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited with {process.returncode}: {process.stderr.read()}"
            )
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up in {seconds}s")


@pytest.fixture
def spawn() -> Iterator:
    """Start a command in its own process group; stop the whole group afterwards."""
    started: list[subprocess.Popen] = []

    def start(args: list[str], **env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_chatchat_serve_subprocess(spawn, config_file, emulator):
    port = free_port()
    process = spawn(
        [str(BIN / "chatchat"), "serve", "--config", str(config_file), "--port", str(port)]
    )
    wait_until_up(f"http://127.0.0.1:{port}/health", process)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    emulator.enqueue(Reply(text="served from a subprocess"))
    reply = client.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "served from a subprocess"
    assert len(client.embeddings.create(model="embed", input="x").data[0].embedding) == 1024
    assert (
        RemoteRunnable(f"http://127.0.0.1:{port}/qwen-plus").invoke("hi").content
        == "Hello! You said: hi"
    )


def test_langchain_serve_in_project_root(spawn, config_file, emulator):
    port = free_port()
    process = spawn(
        [str(BIN / "langchain"), "serve", "--port", str(port)], CHATCHAT_CONFIG=str(config_file)
    )
    wait_until_up(f"http://127.0.0.1:{port}/input_schema", process)
    remote = RemoteRunnable(f"http://127.0.0.1:{port}/")
    assert remote.invoke("hello").content == "Hello! You said: hello"
    assert "".join(chunk.content for chunk in remote.stream("hello")) == "Hello! You said: hello"


def test_models_lists_what_would_be_served(config_file):
    result = CliRunner().invoke(app, ["models", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "PROVIDER", "CLASS"]
    assert lines[1].split() == ["qwen-plus", "chat", "qwen", "ChatQwen"]
    assert lines[2].split() == ["embed", "embeddings", "qwen", "QwenEmbeddings"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: [name: x\n", "invalid YAML"),
        (
            "models:\n  - {name: a, provider: nosuch}\n",
            "models[0] \"a\".provider: unknown provider 'nosuch'",
        ),
        (
            "models:\n  - {name: a, provider: qwen, params: {api_key: '${CHATCHAT_TEST_UNSET}'}}\n",
            'models[0] "a".params.api_key: environment variable CHATCHAT_TEST_UNSET is not set',
        ),
        (
            "models:\n  - {name: a, provider: qwen, params: {api_key: k, temperature: hot}}\n",
            'models[0] "a".params: temperature',
        ),
        (
            "models:\n  - {name: a, provider: qwen, params: {api_key: k, modle: x}}\n",
            "ChatQwen has no parameter(s) modle",
        ),
        ("models:\n  - {name: a, provider: qwen}\n", 'models[0] "a": no DashScope API key'),
    ],
)
@pytest.mark.parametrize("command", ["serve", "models"])
def test_bad_config_is_one_clear_line_and_exit_2(tmp_path, monkeypatch, command, text, expected):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, [command, "--config", str(path)])
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_config_file_is_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["models", "--config", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 2
    assert "cannot read the file" in result.stderr


def test_bad_config_in_a_real_subprocess_has_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - {name: a, provider: nosuch}\n")
    done = subprocess.run(
        [str(BIN / "chatchat"), "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert 'models[0] "a".provider: unknown provider' in done.stderr
