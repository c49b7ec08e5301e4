"""Two real servers over the session's DashScope emulator (one open, one with `api_keys`), and a
real headless browser: playwright driving the system's chromium (never a downloaded one)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator
from tests.server.conftest import qwen_params

API_KEY = "sk-web-test"


def web_config(emulator: DashScopeEmulator, api_keys: list[str]) -> dict[str, Any]:
    return {
        "server": {"api_keys": api_keys},
        "models": [
            {"name": "qwen-plus", "provider": "qwen", "params": qwen_params(emulator, "qwen-plus")},
            {
                "name": "text-embedding-v3",
                "provider": "qwen",
                "kind": "embeddings",
                "params": qwen_params(emulator, "text-embedding-v3"),
            },
        ],
    }


@pytest.fixture(scope="session")
def open_url(dashscope_emulator_session: DashScopeEmulator) -> Iterator[str]:
    with BackgroundServer(create_app(web_config(dashscope_emulator_session, []))) as server:
        yield server.url


@pytest.fixture(scope="session")
def keyed_url(dashscope_emulator_session: DashScopeEmulator) -> Iterator[str]:
    app = create_app(web_config(dashscope_emulator_session, [API_KEY]))
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture
def emulator(dashscope_emulator: DashScopeEmulator) -> DashScopeEmulator:
    return dashscope_emulator


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None and not os.environ.get(
        "CI"
    ):  # CI installs it (.ci/run): never skipped there
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    with sync_api.sync_playwright() as driver:
        instance = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies, empty sessionStorage); fails the test on any
    request to another host and on any script error.

    Set CHATCHAT_SCREENSHOTS=<dir> to keep a screenshot of each page."""
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    outside: list[str] = []
    errors: list[str] = []

    def only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    if folder := os.environ.get("CHATCHAT_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(folder) / f"{request.node.name}.png"))
    context.close()
    assert outside == [], "the page reached outside the server"
    assert errors == []
