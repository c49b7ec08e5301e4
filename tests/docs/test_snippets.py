"""Every ```python block of README.md and docs/*.md, run as written (so the docs cannot rot).

Each block runs on its own, in a fresh namespace, in a folder holding a `chatchat.yaml`, with
the cloud provider pointed at the DashScope emulator through its usual environment variables
(DASHSCOPE_API_KEY, DASHSCOPE_HTTP_BASE_URL) and `http://127.0.0.1:20000` (the server's default
address in the docs) replaced by a real server on a free port serving the models the docs name.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langserve import add_routes
from pydantic import BaseModel

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)
DOCS_ADDRESS = "http://127.0.0.1:20000"
REAL_MODEL = re.compile(r"SmolLM2|default_chat_model|default_embeddings")
# One worker for the module: its server loads SmolLM2 (see tests/conftest.py).
pytestmark = pytest.mark.xdist_group("real_model")


def snippets() -> Iterator[Any]:
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            code = textwrap.dedent(match.group(2))
            marks = [pytest.mark.real_model] if REAL_MODEL.search(code) else []
            yield pytest.param(document.name, line, code, id=f"{document.name}:{line}", marks=marks)


class TranslateInput(BaseModel):
    text: str
    language: str


def emulated(emulator: DashScopeEmulator, name: str, kind: str = "chat") -> dict[str, Any]:
    params = {"model": name, "api_key": emulator.api_key, "base_url": emulator.base_url}
    return {"name": name, "provider": "qwen", "kind": kind, "params": params}


@pytest.fixture(scope="module")
def docs_server(dashscope_emulator_session: DashScopeEmulator) -> Iterator[str]:
    """The models and the /translate chain the docs use, behind a real server."""
    emulator = dashscope_emulator_session
    app = create_app(
        {
            "models": [
                {"name": "SmolLM2-135M-Instruct", "provider": "local"},
                emulated(emulator, "qwen-plus"),
                emulated(emulator, "qwen-turbo"),
                emulated(emulator, "text-embedding-v3", "embeddings"),
            ]
        }
    )
    translator = (
        ChatPromptTemplate.from_messages(
            [("system", "Translate into {language}."), ("human", "{text}")]
        )
        | app.state.registry.get("qwen-turbo").runnable
        | StrOutputParser()
    )
    add_routes(app, translator.with_types(input_type=TranslateInput), path="/translate")
    with BackgroundServer(app) as server:
        yield server.url


@pytest.mark.parametrize(("document", "line", "code"), list(snippets()))
def test_snippet_runs(
    document: str,
    line: int,
    code: str,
    docs_server: str,
    dashscope_emulator: DashScopeEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator = dashscope_emulator
    config = {"models": [emulated(emulator, "qwen-plus"), emulated(emulator, "qwen-turbo")]}
    (tmp_path / "chatchat.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DASHSCOPE_API_KEY", emulator.api_key)
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", emulator.base_url)
    source = code.replace(DOCS_ADDRESS, docs_server)
    exec(compile(source, f"{document}:{line}", "exec"), {"__name__": "__snippet__"})  # noqa: S102


def test_every_document_has_its_snippets_collected() -> None:
    found = {document for document, *_ in (param.values for param in snippets())}
    assert {"README.md", "agents.md", "configuration.md"} <= found
