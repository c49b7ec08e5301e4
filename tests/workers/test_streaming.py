"""Cumulative→incremental conversion, tool-call header dedupe and result accumulation."""

from langchain_chatchat.workers.streaming import (
    CumulativeToIncremental,
    ResultBuilder,
    ToolCallHeaders,
)
from langchain_chatchat.workers.types import ChatDelta, ToolCallDelta, Usage


def _texts(cumulative: list[str]) -> list[str]:
    converter = CumulativeToIncremental()
    return [converter.convert(ChatDelta(text=text)).text for text in cumulative]


def test_repeated_text_is_not_swallowed():
    # Chatchat 0.2 used str.replace: "haha".replace("ha", "") == "" lost the second "ha".
    assert _texts(["ha", "haha"]) == ["ha", "ha"]
    assert _texts(["a", "aa", "aaa"]) == ["a", "a", "a"]


def test_incremental_pieces_join_to_the_final_text():
    steps = ["你", "你好", "你好，世", "你好，世界！"]
    assert "".join(_texts(steps)) == steps[-1]


def test_rewritten_prefix_only_emits_the_new_tail():
    assert _texts(["hello wor", "hello world"]) == ["hello wor", "ld"]
    assert _texts(["abc", "abX"]) == ["abc", "X"]


def test_cumulative_reasoning_and_tool_arguments():
    converter = CumulativeToIncremental()
    first = converter.convert(
        ChatDelta(
            reasoning="think",
            tool_calls=[ToolCallDelta(index=0, id="c1", name="add", arguments='{"a"')],
        )
    )
    second = converter.convert(
        ChatDelta(
            reasoning="thinking",
            tool_calls=[ToolCallDelta(index=0, id="c1", name="add", arguments='{"a": 1}')],
        )
    )
    assert (first.reasoning, second.reasoning) == ("think", "ing")
    assert second.tool_calls[0].arguments == ": 1}"


def test_tool_call_headers_are_sent_once():
    headers = ToolCallHeaders()
    first = headers.dedupe([ToolCallDelta(index=0, id="c1", name="add", arguments="")])
    repeat = headers.dedupe([ToolCallDelta(index=0, id="c1", name="add", arguments='{"a": 1}')])
    empty = headers.dedupe([ToolCallDelta(index=0, id="c1", name="add", arguments="")])
    assert (first[0].id, first[0].name) == ("c1", "add")
    assert (repeat[0].id, repeat[0].name, repeat[0].arguments) == (None, None, '{"a": 1}')
    assert empty == []


def test_result_builder_sums_deltas():
    builder = ResultBuilder()
    builder.add(ChatDelta(text="Hel", request_id="r1", model="m"))
    builder.add(
        ChatDelta(
            text="lo", tool_calls=[ToolCallDelta(index=0, id="c1", name="add", arguments='{"a":')]
        )
    )
    builder.add(ChatDelta(tool_calls=[ToolCallDelta(index=0, arguments=" 2}")]))
    builder.add(ChatDelta(finish_reason="tool_calls", usage=Usage(3, 4, 7)))
    result = builder.build()
    assert result.text == "Hello"
    assert result.tool_calls[0].name == "add" and result.tool_calls[0].arguments == '{"a": 2}'
    assert (result.finish_reason, result.usage.total_tokens, result.request_id) == (
        "tool_calls",
        7,
        "r1",
    )
