"""Agent steps stream as they happen, tools bound: no layer buffers a whole reply.

Chatchat 0.2 users saw replies arrive in one piece as soon as tools were bound. Here the
emulator sends each token `DELAY` seconds apart; a layer that buffered (the server, the worker,
the LangChain classes, the agent) would hand them over all at once, at the end. So each test
checks that the tokens of one reply reach the agent's consumer spread over (at least half) the
time the provider took to send them, and that tool steps come in between.
"""

from __future__ import annotations

import openai
from langchain.agents import create_agent
from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage

from langchain_chatchat.testing import Reply, ToolCallReply
from tests.agents.conftest import (
    ANSWER,
    API_KEY,
    POPULATIONS,
    QUESTION,
    TOTAL,
    Timed,
    Toolbox,
    population_script,
)

DELAY = 0.08
FINAL_TOKENS = len(ANSWER.split()) + 1  # words, then the closing full stop


def assert_spread(stamps: list[float], pieces: int) -> None:
    """`pieces` arrivals spaced like the provider sent them, not bunched together."""
    assert len(stamps) >= pieces
    assert stamps[-1] - stamps[0] >= 0.5 * DELAY * (pieces - 1), stamps


def check_message_stream(timed: Timed) -> None:
    """What `stream_mode="messages"` gave for the population task (see conftest)."""
    kinds = [
        "tool"
        if isinstance(message, ToolMessage)
        else "text"
        if message.content
        else "call"
        if message.tool_call_chunks
        else "empty"
        for _, (message, _) in timed.items
    ]
    # The two tool steps sit between model output, in order: calls, results, calls, result, text.
    compact = [k for i, k in enumerate(kinds) if k != "empty" and (i == 0 or k != kinds[i - 1])]
    assert compact == ["call", "tool", "call", "tool", "text"], kinds
    results = [m.content for _, (m, _) in timed.items if isinstance(m, ToolMessage)]
    assert sorted(results) == sorted(
        [str(POPULATIONS["Paris"]), str(POPULATIONS["Lyon"]), str(TOTAL)]
    )

    text = [(t, m) for t, (m, meta) in timed.items if isinstance(m, AIMessageChunk) and m.content]
    assert "".join(m.content for _, m in text) == ANSWER
    assert all(
        meta["langgraph_node"] == "model"
        for _, (m, meta) in timed.items
        if isinstance(m, AIMessageChunk)
    )
    assert_spread([t for t, _ in text], FINAL_TOKENS)
    # The first text token arrived long before the run ended.
    assert timed.items[-1][0] - text[0][0] >= 0.5 * DELAY * (FINAL_TOKENS - 1)


def test_shim_agent_streams_tokens_with_tools_bound(shim_model, toolbox: Toolbox, emulator):
    emulator.enqueue(*population_script(chunk_delay=DELAY))
    agent = create_agent(shim_model, toolbox.tools())
    timed = Timed()

    for item in agent.stream({"messages": [HumanMessage(QUESTION)]}, stream_mode="messages"):
        timed.add(item)

    check_message_stream(timed)
    assert len(toolbox.calls) == 3


def test_qwen_agent_streams_tokens_with_tools_bound(qwen_model, toolbox: Toolbox, emulator):
    emulator.enqueue(*population_script(chunk_delay=DELAY))
    agent = create_agent(qwen_model, toolbox.tools())
    timed = Timed()

    for item in agent.stream({"messages": [HumanMessage(QUESTION)]}, stream_mode="messages"):
        timed.add(item)

    check_message_stream(timed)


async def test_shim_agent_astream_events(ashim_model, toolbox: Toolbox, emulator):
    """astream_events: model tokens and tool start/end events, interleaved as they happen."""
    emulator.enqueue(*population_script(chunk_delay=DELAY))
    agent = create_agent(ashim_model, toolbox.tools())
    timed = Timed()

    async for event in agent.astream_events({"messages": [HumanMessage(QUESTION)]}, version="v2"):
        if event["event"] in ("on_chat_model_stream", "on_tool_start", "on_tool_end"):
            timed.add(event)

    names = [e["event"] for _, e in timed.items]
    tool_ends = [i for i, name in enumerate(names) if name == "on_tool_end"]
    tokens = [
        (t, e["data"]["chunk"].content)
        for t, e in timed.items
        if e["event"] == "on_chat_model_stream" and e["data"]["chunk"].content
    ]
    assert len(tool_ends) == 3
    assert names.index("on_tool_start") > names.index("on_chat_model_stream")
    assert "".join(text for _, text in tokens) == ANSWER
    # Every tool had finished before the answer's first token.
    assert all(timed.items[i][0] <= tokens[0][0] for i in tool_ends)
    assert_spread([t for t, _ in tokens], FINAL_TOKENS)


def test_tool_call_arguments_stream_in_pieces(shim_model, toolbox: Toolbox, emulator):
    """A tool-calling turn streams too: its argument pieces arrive over time, not in one lump."""
    arguments = {"text": "one two three four five six"}
    emulator.enqueue(
        Reply(
            tool_calls=[ToolCallReply("count_words", arguments, id="call_words")], chunk_delay=DELAY
        ),
        Reply(text="Six words."),
    )
    agent = create_agent(shim_model, toolbox.tools())
    timed = Timed()

    for message, _ in agent.stream(
        {"messages": [HumanMessage("Count the words")]}, stream_mode="messages"
    ):
        if isinstance(message, AIMessageChunk) and message.tool_call_chunks:
            timed.add(message)

    pieces = [m.tool_call_chunks[0]["args"] for _, m in timed.items]
    assert "".join(pieces).replace(" ", "") == '{"text":"onetwothreefourfivesix"}'
    assert_spread([t for t, _ in timed.items], 6)
    assert toolbox.calls == [("count_words", arguments)]


def test_v1_sse_is_not_buffered_when_tools_are_bound(server_url, emulator):
    """At the protocol level: /v1/chat/completions with tools streams token by token."""
    client = openai.OpenAI(base_url=f"{server_url}/v1", api_key=API_KEY, max_retries=0)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add.",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    emulator.enqueue(Reply(text=ANSWER, chunk_delay=DELAY))
    timed = Timed()

    with client.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": "hi"}], tools=tools, stream=True
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                timed.add(chunk.choices[0].delta.content)
    client.close()

    assert "".join(text for _, text in timed.items) == ANSWER
    assert emulator.requests[-1].body["parameters"]["tools"][0]["function"]["name"] == "add"
    assert_spread([t for t, _ in timed.items], FINAL_TOKENS)
