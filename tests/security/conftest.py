"""A hostile-client rig: a real chatchat server (uvicorn with the `server:` connection limits,
`chatchat serve`'s protocols) over upstream emulators that record what they receive, each
provider holding its own planted key.

`ledger` counts the requests each test sends per attack class; the counts and the outcome of
each class are printed at the end of the run ("hostile-client ledger").
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from langchain_chatchat.server import create_app
from langchain_chatchat.server.config import ServerSettings
from langchain_chatchat.server.protocol import Implementation, uvicorn_options
from langchain_chatchat.testing import DashScopeEmulator, OpenAICompatibleEmulator

SERVER_KEY = "srv-PLANTED-4b8e1d0c9a"
KEYS = {
    # Shapes no pattern knows: only the registry of configured secrets can catch them.
    "qwen": "qwen-PLANTED-7c1f2a9e44",
    "zhipu": "zhipuidPLANTED3e9f.zhipusecretPLANTED51",
    "azure": "azure-PLANTED-0d6b3f8a21",
    "spark": "sparkkeyPLANTED22:sparksecretPLANTED93",
    "deepseek": "sk-deepseek-PLANTED-e5a7c3",
    "remote": "remote-PLANTED-91c4e2b7",
    "azure-ad": "aadtoken-PLANTED-5e0c77a1",
}
# Each key, and each half of the two-part ones (Spark's `key:secret`, Zhipu's `id.secret`).
PLANTED = (SERVER_KEY, *KEYS.values(), *(p for key in KEYS.values() for p in re.split("[:.]", key)))
MAX_BODY = 64 * 1024
MAX_HEAD = 8 * 1024
HEAD_TIMEOUT = 1.0
HI = [{"role": "user", "content": "hi"}]
CHAT_MODELS = ("qwen", "zhipu", "azure", "spark", "deepseek", "remote")


class Upstreams:
    """One emulator per provider, each accepting only its planted key."""

    def __init__(self) -> None:
        self.dashscope = DashScopeEmulator(api_key=KEYS["qwen"])
        self.openai = {
            name: OpenAICompatibleEmulator(name, api_key=KEYS[name])
            for name in ("zhipu", "azure", "spark", "deepseek")
        }
        self.openai["remote"] = OpenAICompatibleEmulator(api_key=KEYS["remote"])
        self.attacker = OpenAICompatibleEmulator()
        """Where a hostile body tries to send the provider call: must never hear from us."""

    def all(self) -> list[Any]:
        return [self.dashscope, *self.openai.values(), self.attacker]

    def of(self, model: str) -> Any:
        if model in ("qwen", "embed"):
            return self.dashscope
        return self.openai["azure" if model == "azure-ad" else model]

    def start(self) -> Upstreams:
        for emulator in self.all():
            emulator.start()
        return self

    def stop(self) -> None:
        for emulator in self.all():
            emulator.stop()

    def reset(self) -> None:
        for emulator in self.all():
            emulator.reset()

    def calls(self) -> int:
        return sum(len(emulator.requests) for emulator in self.all())


def server_config(up: Upstreams) -> dict[str, Any]:
    openai = up.openai
    fast = {"max_retries": 0}
    return {
        "server": {
            "api_keys": [SERVER_KEY],
            "max_body_size": MAX_BODY,
            "max_header_size": MAX_HEAD,
            "header_timeout": HEAD_TIMEOUT,
            "keep_alive_timeout": 1.0,
            "max_connections": 64,
        },
        "models": [
            {
                "name": "qwen",
                "provider": "qwen",
                "params": {"api_key": KEYS["qwen"], "base_url": up.dashscope.base_url, **fast},
            },
            {
                "name": "zhipu",
                "provider": "zhipu",
                "params": {"api_key": KEYS["zhipu"], "base_url": openai["zhipu"].base_url, **fast},
            },
            {
                "name": "azure",
                "provider": "azure",
                "params": {
                    "model": "gpt-4o",
                    "api_key": KEYS["azure"],
                    "azure_endpoint": openai["azure"].url,
                    **fast,
                },
            },
            {
                "name": "azure-ad",
                "provider": "azure",
                "params": {
                    "model": "gpt-4o",
                    "azure_ad_token": KEYS["azure-ad"],
                    "azure_endpoint": openai["azure"].url,
                    **fast,
                },
            },
            {
                "name": "spark",
                "provider": "spark",
                "params": {"api_key": KEYS["spark"], "base_url": openai["spark"].base_url, **fast},
            },
            {
                "name": "deepseek",
                "provider": "deepseek",
                "params": {
                    "api_key": KEYS["deepseek"],
                    "base_url": openai["deepseek"].base_url,
                    "timeout": 0.5,
                    **fast,
                },
            },
            {
                "name": "remote",
                "replicas": [
                    {
                        "url": openai["remote"].base_url,
                        "params": {"model": "m", "api_key": KEYS["remote"], **fast},
                    }
                ],
            },
            {
                "name": "embed",
                "provider": "qwen",
                "kind": "embeddings",
                "params": {
                    "model": "text-embedding-v3",
                    "api_key": KEYS["qwen"],
                    "base_url": up.dashscope.base_url,
                    **fast,
                },
            },
        ],
    }


class GuardedServer:
    """`create_app` under uvicorn with `uvicorn_options` (what `chatchat serve` runs), on an
    ephemeral 127.0.0.1 port in a daemon thread."""

    def __init__(self, app: Any, settings: ServerSettings, implementation: Implementation) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else ~40 ms per request
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            loop="asyncio",
            ws="none",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
            **uvicorn_options(settings, implementation),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    def __enter__(self) -> GuardedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    up = Upstreams().start()
    yield up
    up.stop()


@pytest.fixture(scope="session", params=["httptools", "h11"])
def served(request: pytest.FixtureRequest, upstreams: Upstreams) -> Iterator[GuardedServer]:
    """The server, once per HTTP implementation `chatchat serve` may run."""
    app = create_app(server_config(upstreams))
    with GuardedServer(app, app.state.config.server, request.param) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def up(upstreams: Upstreams) -> Upstreams:
    upstreams.reset()
    return upstreams


@pytest.fixture
def http(served: GuardedServer, up: Upstreams) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {SERVER_KEY}"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=10) as client:
        yield client


class Transcript:
    """Everything the client side saw, to be searched for secrets."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, response: httpx.Response) -> httpx.Response:
        response.read()
        self.texts.append(f"{response.status_code} {list(response.headers.items())}")
        self.texts.append(response.text)
        return response

    def note(self, *texts: object) -> None:
        self.texts.extend(str(text) for text in texts)

    def assert_clean(self, *extra: str) -> None:
        for text in [*self.texts, *extra]:
            for secret in PLANTED:
                assert secret not in text, f"a planted secret leaked: {text[:300]!r}"


@pytest.fixture
def transcript(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> Iterator[Transcript]:
    """Collects responses; at the end, every log record (DEBUG, every logger) and everything
    printed is searched too."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "urllib3", "aiohttp", "dashscope", "uvicorn", "openai"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    recorder = Transcript()
    yield recorder
    out, err = capfd.readouterr()
    records = [f"{r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in caplog.records]
    recorder.assert_clean(caplog.text, out, err, *records)


# -- the ledger of attacks ------------------------------------------------------------------------
_LEDGER: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # class → [requests, failed tests]
_CLASSES_OF_TEST: dict[str, set[str]] = defaultdict(set)


class Ledger:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def count(self, attack: str, requests: int = 1) -> None:
        _LEDGER[attack][0] += requests
        _CLASSES_OF_TEST[self.nodeid].add(attack)


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Ledger:
    return Ledger(request.node.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for attack in _CLASSES_OF_TEST.get(item.nodeid, ()):
            _LEDGER[attack][1] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _LEDGER:
        return
    terminalreporter.section("hostile-client ledger")
    for attack, (requests, failures) in sorted(_LEDGER.items()):
        outcome = "as required" if not failures else f"{failures} FAILED test(s)"
        terminalreporter.write_line(f"{attack:<48} {requests:>6} requests  {outcome}")
    terminalreporter.write_line(json.dumps({k: v[0] for k, v in sorted(_LEDGER.items())}))
