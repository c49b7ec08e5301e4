"""`chatchat serve` applies the `server:` connection limits and log level: uvicorn gets the
guarded protocol, the keep-alive and connection caps, and the package's own loggers follow
`server.log_level` / `--log-level` (not only uvicorn's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from langchain_chatchat import cli
from langchain_chatchat.server.config import ConfigError, load_config


def _serve(monkeypatch, tmp_path: Path, server: str, *args: str) -> tuple[Any, dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    path = tmp_path / "c.yaml"
    path.write_text(
        f"server: {server}\nmodels:\n  - {{name: m, provider: qwen, params: {{api_key: k}}}}\n"
    )
    result = CliRunner().invoke(cli.app, ["serve", "--config", str(path), *args])
    return result, (calls[0] if calls else {})


def test_serve_applies_the_connection_limits(monkeypatch, tmp_path):
    server = "{max_header_size: 4096, header_timeout: 3, keep_alive_timeout: 2, max_connections: 9}"
    result, kwargs = _serve(monkeypatch, tmp_path, server)
    assert result.exit_code == 0, result.output
    assert kwargs["limit_concurrency"] == 10  # uvicorn serves one fewer than its limit
    assert kwargs["timeout_keep_alive"] == 2
    assert kwargs["h11_max_incomplete_event_size"] == 4096
    protocol = kwargs["http"]
    assert protocol.max_head == 4096 and protocol.head_timeout == 3


def test_safe_defaults():
    settings = load_config({"models": [{"name": "m", "provider": "qwen"}]}).server
    assert settings.max_header_size == 32 * 1024
    assert settings.header_timeout == 10
    assert settings.max_connections == 2048
    assert settings.log_level == "info"


@pytest.mark.parametrize(
    ("server", "args", "level"),
    [
        ("{}", (), "INFO"),
        ("{log_level: debug}", (), "DEBUG"),
        ("{log_level: warning}", (), "WARNING"),
        ("{log_level: warning}", ("--log-level", "debug"), "DEBUG"),
        ("{}", ("--log-level", "ERROR"), "ERROR"),
    ],
)
def test_log_level_reaches_the_packages_loggers(monkeypatch, tmp_path, server, args, level):
    result, kwargs = _serve(monkeypatch, tmp_path, server, *args)
    assert result.exit_code == 0, result.output
    assert kwargs["log_level"] == level.lower()
    config = kwargs["log_config"]
    assert config["loggers"]["langchain_chatchat"]["level"] == level
    assert config["loggers"]["langchain_chatchat"]["handlers"]  # its lines are written


def test_bad_levels_are_refused(monkeypatch, tmp_path):
    result, kwargs = _serve(monkeypatch, tmp_path, "{}", "--log-level", "loud")
    assert result.exit_code == 2 and not kwargs
    with pytest.raises(ConfigError, match="log_level"):
        load_config(
            {"server": {"log_level": "loud"}, "models": [{"name": "m", "provider": "qwen"}]}
        )
