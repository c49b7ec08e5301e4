"""The same agents with ChatQwen as the model directly (no server in between): create_agent,
a hand-built LangGraph ReAct graph, and a Qwen3 thinking model calling tools."""

from __future__ import annotations

from typing import Annotated, TypedDict

from langchain.agents import create_agent
from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_chatchat import ChatQwen
from tests.agents.conftest import (
    QUESTION,
    Toolbox,
    assert_population_task_done,
    population_script,
    qwen_params,
    upstream_messages,
)


def test_create_agent_with_chat_qwen(qwen_model: ChatQwen, toolbox: Toolbox, emulator):
    emulator.enqueue(*population_script())
    agent = create_agent(qwen_model, toolbox.tools())

    result = agent.invoke({"messages": [HumanMessage(QUESTION)]})

    assert_population_task_done(toolbox, emulator, result["messages"])
    assert result["messages"][1].response_metadata["finish_reason"] == "tool_calls"


async def test_create_agent_with_chat_qwen_async(qwen_model: ChatQwen, toolbox: Toolbox, emulator):
    emulator.enqueue(*population_script())
    agent = create_agent(qwen_model, toolbox.tools())

    result = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})

    assert_population_task_done(toolbox, emulator, result["messages"])


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def test_hand_built_react_graph(qwen_model: ChatQwen, toolbox: Toolbox, emulator):
    """The ReAct loop spelled out in LangGraph: model node, ToolNode, tools_condition."""
    tools = toolbox.tools()
    model = qwen_model.bind_tools(tools)
    graph = StateGraph(State)
    graph.add_node("model", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    emulator.enqueue(*population_script())

    result = graph.compile().invoke({"messages": [HumanMessage(QUESTION)]})

    assert_population_task_done(toolbox, emulator, result["messages"])


def test_thinking_model_calls_tools_and_answers(toolbox: Toolbox, emulator):
    """qwen3 with thinking on (stream-only upstream): reasoning on each turn, the tool loop intact."""
    model = ChatQwen(**qwen_params(emulator, "qwen3-8b"), enable_thinking=True)
    agent = create_agent(model, toolbox.tools())

    result = agent.invoke({"messages": [HumanMessage("What is 19 + 23? Use the add tool.")]})

    assert toolbox.calls == [("add", {"a": 19, "b": 23})]
    call_turn, final = result["messages"][1], result["messages"][-1]
    assert call_turn.tool_calls[0]["name"] == "add"
    assert "add" in call_turn.additional_kwargs["reasoning_content"]
    assert final.content == "The result is 42."
    assert final.additional_kwargs["reasoning_content"]
    assert upstream_messages(emulator)[-1] == {
        "role": "tool",
        "content": "42",
        "tool_call_id": call_turn.tool_calls[0]["id"],
        "name": "add",
    }
