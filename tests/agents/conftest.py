"""Agents over our stack: a real chatchat server (uvicorn, ephemeral 127.0.0.1 port) whose
models call the session's DashScope emulator, plus the tools and scripts the agent tests share.

The server serves `qwen-plus` and `qwen-turbo` on both protocols, and one chain of its own at
`/translate` (prompt | the served `qwen-turbo` | text), added to the app with LangServe's
`add_routes` the way a user extends `create_app`'s app. API keys are on, so every client below
proves it sends one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import BaseTool, tool
from langchain_openai import ChatOpenAI
from langserve import RemoteRunnable, add_routes
from pydantic import BaseModel, Field

from langchain_chatchat import ChatQwen
from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator, Reply, ToolCallReply

API_KEY = "sk-agents-test"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
QUESTION = "How many people live in Paris and Lyon together?"
POPULATIONS = {"Paris": 2_102_650, "Lyon": 522_250}
TOTAL = sum(POPULATIONS.values())
ANSWER = f"Paris and Lyon have {TOTAL} inhabitants together."


class TranslateInput(BaseModel):
    """What the `/translate` chain takes."""

    text: str = Field(description="The text to translate.")
    language: str = Field(description="The language to translate into, e.g. French.")


TRANSLATE_PROMPT = "Translate the user's text into {language}. Reply with the translation only."


def qwen_params(emulator: DashScopeEmulator, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "api_key": emulator.api_key,
        "base_url": emulator.base_url,
        "max_retries": 0,
    }


@pytest.fixture(scope="session")
def server_url(dashscope_emulator_session: DashScopeEmulator) -> Iterator[str]:
    emulator = dashscope_emulator_session
    app = create_app(
        {
            "server": {"api_keys": [API_KEY]},
            "models": [
                {
                    "name": "qwen-plus",
                    "provider": "qwen",
                    "params": qwen_params(emulator, "qwen-plus"),
                },
                {
                    "name": "qwen-turbo",
                    "provider": "qwen",
                    "params": qwen_params(emulator, "qwen-turbo"),
                },
            ],
        }
    )
    served = app.state.registry.get("qwen-turbo", "chat").runnable
    translator = (
        ChatPromptTemplate.from_messages([("system", TRANSLATE_PROMPT), ("human", "{text}")])
        | served
        | StrOutputParser()
    )
    add_routes(app, translator.with_types(input_type=TranslateInput), path="/translate")
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture
def emulator(dashscope_emulator: DashScopeEmulator) -> DashScopeEmulator:
    """The session's emulator with an empty script and request log."""
    return dashscope_emulator


@pytest.fixture
def shim_model(server_url: str, emulator: DashScopeEmulator) -> ChatOpenAI:
    """langchain-openai's ChatOpenAI pointed at our OpenAI-compatible /v1 (sync use)."""
    return ChatOpenAI(
        model="qwen-plus", base_url=f"{server_url}/v1", api_key=API_KEY, max_retries=0
    )


@pytest.fixture
async def ashim_model(server_url: str, emulator: DashScopeEmulator) -> AsyncIterator[ChatOpenAI]:
    """The same for async use, with its own async HTTP client: langchain-openai otherwise shares
    one cached client per base URL across event loops, and each test has its own loop."""
    client = openai.DefaultAsyncHttpxClient()
    yield ChatOpenAI(
        model="qwen-plus",
        base_url=f"{server_url}/v1",
        api_key=API_KEY,
        max_retries=0,
        http_async_client=client,
    )
    await client.aclose()


@pytest.fixture
def qwen_model(emulator: DashScopeEmulator) -> ChatQwen:
    """ChatQwen straight on the emulator (no server in between)."""
    return ChatQwen(**qwen_params(emulator, "qwen-plus"))


@pytest.fixture
def remote_translator(server_url: str) -> Iterator[RemoteRunnable]:
    runnable = RemoteRunnable(f"{server_url}/translate", headers=AUTH)
    yield runnable
    runnable.sync_client.close()


@dataclass
class Toolbox:
    """Tools that record every call, so a test can tell that they really ran."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def tools(self) -> list[BaseTool]:
        @tool
        def get_population(city: str) -> int:
            """The number of people living in a city."""
            self.calls.append(("get_population", {"city": city}))
            return POPULATIONS[city]

        @tool
        def add(a: int, b: int) -> int:
            """Add two integers."""
            self.calls.append(("add", {"a": a, "b": b}))
            return a + b

        @tool
        def count_words(text: str) -> int:
            """Count the words in a text."""
            self.calls.append(("count_words", {"text": text}))
            return len(text.split())

        return [get_population, add, count_words]


@pytest.fixture
def toolbox() -> Toolbox:
    return Toolbox()


def population_script(final_text: str = ANSWER, chunk_delay: float = 0.0) -> list[Reply]:
    """Two tool-calling turns in sequence (look both cities up, then add), then the answer."""
    return [
        Reply(
            tool_calls=[
                ToolCallReply("get_population", {"city": "Paris"}, id="call_paris"),
                ToolCallReply("get_population", {"city": "Lyon"}, id="call_lyon"),
            ]
        ),
        Reply(
            tool_calls=[
                ToolCallReply(
                    "add", {"a": POPULATIONS["Paris"], "b": POPULATIONS["Lyon"]}, id="call_add"
                )
            ]
        ),
        Reply(text=final_text, chunk_delay=chunk_delay),
    ]


def upstream_messages(
    emulator: DashScopeEmulator, index: int = -1, *, system: bool = True
) -> list[dict[str, Any]]:
    """The messages of a request as the provider (the emulator) received them."""
    body = emulator.requests[index].body
    assert body is not None
    return [m for m in body["input"]["messages"] if system or m["role"] != "system"]


def assert_population_task_done(
    toolbox: Toolbox, emulator: DashScopeEmulator, messages: list[BaseMessage]
) -> None:
    """The tools ran in order, each result went back to the model, and the answer came out.

    The two lookups of the first turn run concurrently (the agent's tool node runs the calls of
    one turn in parallel), so their order among themselves is not fixed.
    """
    lookups, later = toolbox.calls[:2], toolbox.calls[2:]
    assert sorted(city["city"] for _, city in lookups) == ["Lyon", "Paris"]
    assert {name for name, _ in lookups} == {"get_population"}
    assert later == [("add", {"a": POPULATIONS["Paris"], "b": POPULATIONS["Lyon"]})]
    assert len(emulator.requests) == 3
    assert [m["role"] for m in upstream_messages(emulator, 1, system=False)] == [
        "user",
        "assistant",
        "tool",
        "tool",
    ]
    last = upstream_messages(emulator, 2, system=False)
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "tool", "assistant", "tool"]
    results = [(m["tool_call_id"], m["content"]) for m in last if m["role"] == "tool"]
    assert sorted(results[:2]) == [
        ("call_lyon", str(POPULATIONS["Lyon"])),
        ("call_paris", str(POPULATIONS["Paris"])),
    ]
    assert results[2] == ("call_add", str(TOTAL))
    assert last[4]["tool_calls"][0]["function"]["name"] == "add"
    assert [m.type for m in messages if m.type != "system"] == [
        "human",
        "ai",
        "tool",
        "tool",
        "ai",
        "tool",
        "ai",
    ]
    assert messages[-1].content == ANSWER


class Timed:
    """Stream items stamped with their arrival time."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.items: list[tuple[float, Any]] = []

    def add(self, item: Any) -> None:
        self.items.append((time.monotonic() - self.start, item))
