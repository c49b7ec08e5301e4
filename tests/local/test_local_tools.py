"""Hermes/Qwen <tool_call> parsing and tool-template checks."""

from __future__ import annotations

import json

import pytest

from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.local.tools import (
    ToolCallParser,
    check_tool_template,
    forced_prefix,
)

REPLY = (
    "Checking both.\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n'
    '{"name": "get_time", "arguments": {"zone": "東京"}}\n</tool_call>'
)


def _feed(parser: ToolCallParser, pieces: list[str]):
    text, calls = [], []
    for piece in pieces:
        shown, found = parser.push(piece)
        text.append(shown)
        calls += found
    shown, found = parser.flush()
    return "".join(text) + shown, calls + found


@pytest.mark.parametrize("chunk", [1, 3, 7, len(REPLY)])
def test_calls_parsed_from_any_chunking(chunk: int) -> None:
    text, calls = _feed(
        ToolCallParser(), [REPLY[i : i + chunk] for i in range(0, len(REPLY), chunk)]
    )
    assert text == "Checking both.\n"
    assert [(c.index, c.name) for c in calls] == [(0, "get_weather"), (1, "get_time")]
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert json.loads(calls[1].arguments) == {"zone": "東京"}
    assert len({c.id for c in calls}) == 2


def test_unclosed_call_at_the_end_still_counts() -> None:
    _, calls = _feed(ToolCallParser(), ['<tool_call>\n{"name": "f", "arguments": {}}'])
    assert calls[0].name == "f" and calls[0].arguments == "{}"


def test_malformed_call_is_kept_as_raw_arguments() -> None:
    _, calls = _feed(ToolCallParser(), ["<tool_call>{not json</tool_call>"])
    assert calls[0].name == "" and calls[0].arguments == "{not json"
    _, calls = _feed(ToolCallParser(), ['<tool_call>{"name": "f", "arguments": {oops</tool_call>'])
    assert calls[0].name == "f"


def test_text_that_only_looks_like_a_tag_is_shown() -> None:
    text, calls = _feed(ToolCallParser(), ["a <tool", "box> b"])
    assert text == "a <toolbox> b" and calls == []


def test_forced_prefix() -> None:
    assert forced_prefix(None, ["f"]) == forced_prefix("auto", ["f"]) == ""
    assert forced_prefix("required", ["f"]) == "<tool_call>\n"
    assert forced_prefix("f", ["f"]) == '<tool_call>\n{"name": "f", "arguments": '
    with pytest.raises(BadRequestError, match="names no tool"):
        forced_prefix("g", ["f"])


def test_forced_prefix_completes_to_a_call() -> None:
    parser = ToolCallParser()
    parser.push(forced_prefix("f", ["f"]))
    _, calls = _feed(parser, ['{"x": 1}}\n</tool_call>'])
    assert calls[0].name == "f" and json.loads(calls[0].arguments) == {"x": 1}


def test_template_checks() -> None:
    check_tool_template("{% if tools %}<tool_call>{% endif %}", "m")
    with pytest.raises(BadRequestError, match="does not support tools"):
        check_tool_template("{{ messages }}", "m")
    with pytest.raises(BadRequestError, match="other than Hermes"):
        check_tool_template("{% if tools %}[TOOL_CALLS]{% endif %}", "m")
