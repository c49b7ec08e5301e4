"""A LangChain agent whose model is our server, reached through langchain-openai's ChatOpenAI.

agent (create_agent) → ChatOpenAI → /v1/chat/completions → ChatQwen → DashScope (emulator).
Tools are bound by ChatOpenAI, sent as OpenAI tools, re-bound by the server through ChatQwen's
own `bind_tools`, and reach the provider in its native format; tool calls and tool results make
the same trip back.
"""

from __future__ import annotations

import json

import openai
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from tests.agents.conftest import (
    ANSWER,
    API_KEY,
    POPULATIONS,
    QUESTION,
    TOTAL,
    Toolbox,
    assert_population_task_done,
    population_script,
    upstream_messages,
)


def test_agent_completes_a_two_step_task(shim_model, toolbox: Toolbox, emulator):
    emulator.enqueue(*population_script())
    agent = create_agent(
        shim_model, toolbox.tools(), system_prompt="Use the tools; answer briefly."
    )

    result = agent.invoke({"messages": [HumanMessage(QUESTION)]})

    assert_population_task_done(toolbox, emulator, result["messages"])
    # The tools reached the provider as functions, on every turn.
    body = emulator.requests[0].body
    assert {t["function"]["name"] for t in body["parameters"]["tools"]} == {
        "get_population",
        "add",
        "count_words",
    }
    assert upstream_messages(emulator, 0)[0] == {
        "role": "system",
        "content": "Use the tools; answer briefly.",
    }


async def test_agent_async(ashim_model, toolbox: Toolbox, emulator):
    emulator.enqueue(*population_script())
    agent = create_agent(ashim_model, toolbox.tools())

    result = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})

    assert_population_task_done(toolbox, emulator, result["messages"])


def test_agent_with_the_default_responder_needs_no_script(shim_model, toolbox: Toolbox, emulator):
    """Unscripted: the emulator's responder picks `add` from the question and reports its result."""
    agent = create_agent(shim_model, toolbox.tools())

    result = agent.invoke({"messages": [HumanMessage("What is 2 + 3? Use the add tool.")]})

    assert toolbox.calls == [("add", {"a": 2, "b": 3})]
    assert result["messages"][-1].content == "The result is 5."
    tool_message = upstream_messages(emulator)[-1]
    assert (tool_message["role"], tool_message["content"]) == ("tool", "5")


def test_agent_steps_stream_as_updates(shim_model, toolbox: Toolbox, emulator):
    """`stream_mode="updates"`: one update per step, model and tools alternating."""
    emulator.enqueue(*population_script())
    agent = create_agent(shim_model, toolbox.tools())

    steps = [
        (node, update["messages"][-1])
        for chunk in agent.stream({"messages": [HumanMessage(QUESTION)]}, stream_mode="updates")
        for node, update in chunk.items()
    ]

    # The two lookups the model asked for at once run as two parallel tool steps.
    assert [node for node, _ in steps] == ["model", "tools", "tools", "model", "tools", "model"]
    assert [call["name"] for call in steps[0][1].tool_calls] == ["get_population", "get_population"]
    assert {steps[1][1].content, steps[2][1].content} == {
        str(POPULATIONS["Paris"]),
        str(POPULATIONS["Lyon"]),
    }
    assert isinstance(steps[4][1], ToolMessage) and steps[4][1].content == str(TOTAL)
    assert isinstance(steps[5][1], AIMessage) and steps[5][1].content == ANSWER


def test_openai_sdk_runs_the_same_tool_loop_by_hand(server_url, emulator):
    """What ChatOpenAI does under the hood, with the openai SDK: call, run the tool, send it back."""
    client = openai.OpenAI(base_url=f"{server_url}/v1", api_key=API_KEY, max_retries=0)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two integers.",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
            },
        }
    ]
    messages: list[dict] = [{"role": "user", "content": "What is 20 + 22?"}]
    first = client.chat.completions.create(model="qwen-plus", messages=messages, tools=tools)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "add"
    args = json.loads(call.function.arguments)
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": str(args["a"] + args["b"])},
    ]
    second = client.chat.completions.create(model="qwen-plus", messages=messages, tools=tools)
    assert second.choices[0].message.content == "The result is 42."
    client.close()
