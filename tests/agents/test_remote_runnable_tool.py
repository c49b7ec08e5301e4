"""RemoteRunnable inside agents: chains served by our LangServe routes, used as agent tools.

Two shapes: a chain that runs on the server (`/translate`: prompt | served qwen-turbo | text),
and a chain composed on the client around the served model's route (`/qwen-turbo`).
"""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langserve import RemoteRunnable

from langchain_chatchat.testing import Reply, ToolCallReply
from tests.agents.conftest import AUTH, TRANSLATE_PROMPT, Toolbox, TranslateInput, upstream_messages

pytestmark = [
    # Runnable.as_tool is marked beta in langchain-core.
    pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning"),
    # langserve 0.3 reads `model_fields` from an instance when validating typed inputs.
    pytest.mark.filterwarnings("ignore:Accessing the 'model_fields':DeprecationWarning"),
]

REQUEST = "Translate 'good morning everyone' into French, then count the words of the translation."
TRANSLATION = "Bonjour à tous"
FINAL = f"In French it is '{TRANSLATION}', which has 3 words."


def translate_tool(remote: RemoteRunnable):
    return remote.as_tool(
        args_schema=TranslateInput,
        name="translate",
        description="Translate a text into another language.",
    )


def translation_script() -> list[Reply]:
    """Agent turn → (the server-side chain's own model call) → agent turn → final answer."""
    return [
        Reply(
            tool_calls=[
                ToolCallReply(
                    "translate",
                    {"text": "good morning everyone", "language": "French"},
                    id="call_tr",
                )
            ]
        ),
        Reply(text=TRANSLATION),
        Reply(tool_calls=[ToolCallReply("count_words", {"text": TRANSLATION}, id="call_count")]),
        Reply(text=FINAL),
    ]


def assert_translation_task_done(toolbox: Toolbox, emulator, result) -> None:
    # The chain ran on the server: its prompt reached the provider, on the chain's model.
    chain_call = emulator.requests[1].body
    assert chain_call["model"] == "qwen-turbo"
    assert upstream_messages(emulator, 1) == [
        {"role": "system", "content": TRANSLATE_PROMPT.format(language="French")},
        {"role": "user", "content": "good morning everyone"},
    ]
    # Its output came back as the tool result, and the agent went on with it.
    assert toolbox.calls == [("count_words", {"text": TRANSLATION})]
    final_call = upstream_messages(emulator, 3, system=False)
    assert [(m["role"], m["content"]) for m in final_call if m["role"] == "tool"] == [
        ("tool", TRANSLATION),
        ("tool", "3"),
    ]
    assert result["messages"][-1].content == FINAL


def test_server_side_chain_as_a_tool_of_a_shim_agent(
    shim_model, remote_translator, toolbox: Toolbox, emulator
):
    count_words = next(t for t in toolbox.tools() if t.name == "count_words")
    agent = create_agent(shim_model, [translate_tool(remote_translator), count_words])
    emulator.enqueue(*translation_script())

    result = agent.invoke({"messages": [HumanMessage(REQUEST)]})

    assert [r.body["model"] for r in emulator.requests] == [
        "qwen-plus",
        "qwen-turbo",
        "qwen-plus",
        "qwen-plus",
    ]
    assert_translation_task_done(toolbox, emulator, result)


async def test_server_side_chain_as_a_tool_async(
    qwen_model, server_url, toolbox: Toolbox, emulator
):
    remote = RemoteRunnable(f"{server_url}/translate", headers=AUTH)
    count_words = next(t for t in toolbox.tools() if t.name == "count_words")
    agent = create_agent(qwen_model, [translate_tool(remote), count_words])
    emulator.enqueue(*translation_script())
    try:
        result = await agent.ainvoke({"messages": [HumanMessage(REQUEST)]})
    finally:
        await remote.async_client.aclose()

    assert_translation_task_done(toolbox, emulator, result)


def test_client_side_chain_over_the_served_model_route(qwen_model, server_url, emulator):
    """prompt | RemoteRunnable(/qwen-turbo) | parser, composed here, as the agent's tool."""
    remote_model = RemoteRunnable(f"{server_url}/qwen-turbo", headers=AUTH)
    summarize = (
        ChatPromptTemplate.from_messages(
            [("system", "Summarize in at most five words."), ("human", "{text}")]
        )
        | remote_model
        | StrOutputParser()
    ).as_tool(name="summarize", description="Summarize a text in a few words.")
    agent = create_agent(qwen_model, [summarize])
    long_text = "The meeting moved from Monday to Thursday because the room was booked."
    emulator.enqueue(
        Reply(tool_calls=[ToolCallReply("summarize", {"text": long_text}, id="call_sum")]),
        Reply(text="Meeting moved to Thursday."),
        Reply(text="Summary: meeting moved to Thursday."),
    )
    try:
        result = agent.invoke({"messages": [HumanMessage(f"Summarize this: {long_text}")]})
    finally:
        remote_model.sync_client.close()

    assert emulator.requests[1].body["model"] == "qwen-turbo"
    assert upstream_messages(emulator, 1) == [
        {"role": "system", "content": "Summarize in at most five words."},
        {"role": "user", "content": long_text},
    ]
    assert upstream_messages(emulator, 2)[-1]["content"] == "Meeting moved to Thursday."
    assert result["messages"][-1].content == "Summary: meeting moved to Thursday."
