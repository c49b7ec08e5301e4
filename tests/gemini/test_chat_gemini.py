"""ChatGemini against GeminiEmulator: what it sends, and what callers get back."""

from __future__ import annotations

import base64
import io

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from PIL import Image
from pydantic import BaseModel

from langchain_chatchat import BadRequestError, ChatGemini, ContentFilterError
from langchain_chatchat.testing import PromptBlocked, Reply, ToolCallReply
from langchain_chatchat.workers.errors import UpstreamServerError
from langchain_chatchat.workers.types import ChatRequest, WorkerMessage

from .conftest import sent


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return "sunny"


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_invoke_translates_the_request(emulator):
    llm = ChatGemini(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        temperature=0.3,
        top_p=0.9,
        top_k=20,
        max_tokens=50,
        seed=7,
        stop=["END"],
        thinking_budget=512,
    )
    reply = llm.invoke([SystemMessage("be brief"), HumanMessage("hello there")])
    assert reply.content == "Hello! You said: hello there"
    body = sent(emulator)
    assert body["systemInstruction"]["parts"] == [{"text": "be brief"}]
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]
    config = body["generationConfig"]
    assert config["temperature"] == 0.3 and config["topP"] == 0.9 and config["topK"] == 20
    assert config["maxOutputTokens"] == 50 and config["seed"] == 7
    assert config["stopSequences"] == ["END"]
    assert config["thinkingConfig"] == {"thinking_budget": 512}
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["model_name"] == "gemini-2.5-flash"
    assert reply.id == emulator.last_request_id


def test_usage_metadata_counts_thoughts_and_cache(llm, emulator):
    emulator.enqueue(
        Reply(text="ok", usage={"input_tokens": 10, "output_tokens": 3, "reasoning_tokens": 5})
    )
    usage = llm.invoke("hi").usage_metadata
    assert usage["input_tokens"] == 10 and usage["output_tokens"] == 8
    assert usage["total_tokens"] == 18 and usage["output_token_details"] == {"reasoning": 5}
    emulator.enqueue(
        Reply(text="ok", usage={"input_tokens": 10, "output_tokens": 3, "cached_tokens": 6})
    )
    assert llm.invoke("hi").usage_metadata["input_token_details"] == {"cache_read": 6}


def test_stream_is_incremental_with_usage_once(llm, emulator):
    emulator.enqueue(Reply(text="one two three"))
    chunks = list(llm.stream("hi"))
    assert [c.content for c in chunks if c.content] == ["one", " two", " three"]
    assert [c.usage_metadata for c in chunks if c.usage_metadata][0]["output_tokens"] == 3
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    whole = sum(chunks[1:], chunks[0])
    assert whole.response_metadata["finish_reason"] == "stop"
    assert emulator.requests[-1].path.endswith(":streamGenerateContent")


async def test_async_invoke_and_stream(llm, emulator):
    emulator.enqueue(Reply(text="async one"), Reply(text="a b c"))
    assert (await llm.ainvoke("hi")).content == "async one"
    texts = [c.content async for c in llm.astream("hi") if c.content]
    assert texts == ["a", " b", " c"]
    await llm.worker.aclose()


def test_thinking_becomes_reasoning_content(emulator):
    llm = ChatGemini(api_key=emulator.api_key, base_url=emulator.base_url, include_thoughts=True)
    reply = llm.invoke("why?")
    assert reply.additional_kwargs["reasoning_content"].startswith("The user said")
    assert sent(emulator)["generationConfig"]["thinkingConfig"] == {"include_thoughts": True}
    chunks = list(llm.stream("why?"))
    reasoning = "".join(c.additional_kwargs.get("reasoning_content", "") for c in chunks)
    assert reasoning == reply.additional_kwargs["reasoning_content"]
    # without include_thoughts the thoughts are counted but not shown
    plain = ChatGemini(api_key=emulator.api_key, base_url=emulator.base_url).invoke("why?")
    assert "reasoning_content" not in plain.additional_kwargs
    assert plain.usage_metadata["output_token_details"]["reasoning"] > 0


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("any", {"mode": "ANY"}),
        ("get_weather", {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ],
)
def test_tool_choice(llm, emulator, choice, config):
    bound = llm.bind_tools([get_weather, add], tool_choice=choice)
    reply = bound.invoke("what is the weather in Paris?")
    body = sent(emulator)
    assert body["toolConfig"] == {"functionCallingConfig": config}
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "get_weather"
    assert declaration["parameters_json_schema"]["required"] == ["city"]
    if choice == "none":
        assert not reply.tool_calls
    else:
        assert reply.tool_calls[0]["name"] == "get_weather"
        assert reply.tool_calls[0]["args"] == {"city": "Paris"}
        assert reply.response_metadata["finish_reason"] == "tool_calls"


def test_tool_results_round_trip(llm, emulator):
    emulator.enqueue(
        Reply(tool_calls=[ToolCallReply("add", {"a": 2, "b": 3}), ToolCallReply("add", {"a": 1})])
    )
    bound = llm.bind_tools([add])
    call = bound.invoke("add 2 and 3, and 1")
    assert [c["args"] for c in call.tool_calls] == [{"a": 2, "b": 3}, {"a": 1}]
    history = [
        HumanMessage("add 2 and 3, and 1"),
        call,
        ToolMessage("5", tool_call_id=call.tool_calls[0]["id"]),
        ToolMessage('{"sum": 1}', tool_call_id=call.tool_calls[1]["id"]),
    ]
    assert bound.invoke(history).content == 'The result is 5; {"sum": 1}.'
    contents = sent(emulator)["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0]["functionCall"] == {"name": "add", "args": {"a": 2, "b": 3}}
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "add", "response": {"result": 5}}},
        {"functionResponse": {"name": "add", "response": {"sum": 1}}},
    ]


def test_streamed_tool_calls(llm, emulator):
    emulator.enqueue(Reply(text="let me", tool_calls=[ToolCallReply("add", {"a": 1, "b": 2})]))
    chunks = list(llm.bind_tools([add]).stream("1+2"))
    whole = sum(chunks[1:], chunks[0])
    assert whole.tool_calls == [
        {
            "name": "add",
            "args": {"a": 1, "b": 2},
            "id": whole.tool_calls[0]["id"],
            "type": "tool_call",
        }
    ]
    assert whole.response_metadata["finish_reason"] == "tool_calls"


def test_gemini_3_tool_history_carries_a_signature(emulator):
    llm = ChatGemini(
        model="gemini-3-pro-preview", api_key=emulator.api_key, base_url=emulator.base_url
    )
    history = [
        HumanMessage("weather in Paris?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]),
        ToolMessage("sunny", tool_call_id="c1"),
    ]
    assert llm.bind_tools([get_weather]).invoke(history).content == "The result is sunny."
    part = sent(emulator)["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == "skip_thought_signature_validator"


def test_structured_output_methods(llm, emulator):
    person = llm.with_structured_output(Person).invoke("Bob is 30")
    assert isinstance(person, Person)
    assert sent(emulator)["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] == [
        "Person"
    ]
    schema = llm.with_structured_output(Person, method="json_schema").invoke("Bob")
    assert isinstance(schema, Person)
    config = sent(emulator)["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["required"] == ["name", "age"]
    assert llm.with_structured_output(None, method="json_mode").invoke("give json") == {
        "answer": "You said: give json"
    }
    assert "responseJsonSchema" not in sent(emulator)["generationConfig"]


def _png_bytes() -> bytes:
    image = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(image, format="PNG")
    return image.getvalue()


def test_images_become_inline_data_or_file_data(llm, emulator):
    png = base64.b64encode(_png_bytes()).decode()
    message = HumanMessage(
        content=[
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            {"type": "image", "url": "https://example.com/cat.webp"},
        ]
    )
    llm.invoke([message])
    parts = sent(emulator)["contents"][0]["parts"]
    # the SDK writes nested fields in proto JSON's snake_case spelling, which the API accepts
    assert parts[1] == {"inlineData": {"mime_type": "image/png", "data": png}}
    assert parts[2] == {
        "fileData": {"file_uri": "https://example.com/cat.webp", "mime_type": "image/webp"}
    }
    bad = HumanMessage(
        content=[{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!"}}]
    )
    with pytest.raises(BadRequestError, match="base64"):
        llm.invoke([bad])


@pytest.mark.parametrize(
    ("wire", "ours"),
    [
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("RECITATION", "content_filter"),
        ("OTHER", "other"),
        ("LANGUAGE", "language"),
    ],
)
def test_finish_reasons_never_hide_truncation(llm, emulator, wire, ours):
    emulator.enqueue(
        Reply(text="partial", finish_reason=wire), Reply(text="partial", finish_reason=wire)
    )
    assert llm.invoke("hi").response_metadata["finish_reason"] == ours
    chunks = list(llm.stream("hi"))
    assert chunks[-1].response_metadata["finish_reason"] == ours


def test_malformed_function_call_is_an_error(llm, emulator):
    emulator.enqueue(Reply(text="", finish_reason="MALFORMED_FUNCTION_CALL"))
    with pytest.raises(UpstreamServerError) as caught:
        llm.invoke("hi")
    assert caught.value.code == "MALFORMED_FUNCTION_CALL" and caught.value.retryable


@pytest.mark.parametrize("streaming", [False, True])
def test_blocked_prompt_is_a_content_filter_error(llm, emulator, streaming):
    emulator.enqueue(PromptBlocked("PROHIBITED_CONTENT"))
    with pytest.raises(ContentFilterError) as caught:
        list(llm.stream("bad")) if streaming else llm.invoke("bad")
    assert caught.value.code == "PROHIBITED_CONTENT"


def test_call_options(llm, emulator):
    llm.invoke("hi", top_k=3, thinking_budget=0, include_thoughts=False, presence_penalty=0.5)
    config = sent(emulator)["generationConfig"]
    assert config["topK"] == 3 and config["presencePenalty"] == 0.5
    assert config["thinkingConfig"] == {"thinking_budget": 0, "include_thoughts": False}
    emulator.reset()
    for option in ({"logit_bias": {"1": 2}}, {"safety_settings": []}, {"api_key": "x"}):
        with pytest.raises(BadRequestError, match="Unrecognized request argument"):
            llm.invoke("hi", **option)
    assert emulator.requests == []


def test_unknown_model_kwargs_are_refused_before_sending(emulator):
    llm = ChatGemini(
        api_key=emulator.api_key, base_url=emulator.base_url, model_kwargs={"logit_bias": {}}
    )
    with pytest.raises(BadRequestError, match="logit_bias"):
        llm.invoke("hi")
    assert emulator.requests == []


def test_more_than_five_stop_sequences_fail_before_sending(llm, emulator):
    with pytest.raises(BadRequestError, match="at most 5 stop sequences"):
        llm.invoke("hi", stop=list("abcdef"))
    assert emulator.requests == []


def test_gemini_3_thought_signatures_are_sent_back(emulator):
    llm = ChatGemini(
        model="gemini-3-flash-preview", api_key=emulator.api_key, base_url=emulator.base_url
    )
    bound = llm.bind_tools([get_weather])
    call = bound.invoke("weather in Paris?")
    history = [
        HumanMessage("weather in Paris?"),
        call,
        ToolMessage("sunny", tool_call_id=call.tool_calls[0]["id"]),
    ]
    # the emulator refuses signatures it did not issue, so this passes only with the real one
    assert bound.invoke(history).content == "The result is sunny."
    signature = sent(emulator)["contents"][1]["parts"][0]["thoughtSignature"]
    assert signature != "skip_thought_signature_validator"
    forged = [history[0], call.model_copy(), history[2]]
    forged[1].tool_calls = [{**call.tool_calls[0], "id": "another-id"}]
    forged[2] = ToolMessage("sunny", tool_call_id="another-id")
    assert bound.invoke(forged).content == "The result is sunny."  # unknown id: the sentinel


def test_audio_becomes_inline_data(llm, emulator):
    """Worker-level: OpenAI `input_audio` parts (the worker message interface) → inlineData."""
    wav = base64.b64encode(b"RIFF fake wav").decode()
    parts = [
        {"type": "text", "text": "transcribe"},
        {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
    ]
    request = ChatRequest(model="gemini-2.5-flash", messages=[WorkerMessage("user", parts)])
    llm.worker.invoke(request)
    part = sent(emulator)["contents"][0]["parts"][1]
    assert part == {"inlineData": {"mime_type": "audio/wav", "data": wav}}
    doc = [{"type": "file", "file": {"file_data": "JVBERi0="}}]
    with pytest.raises(BadRequestError, match="type 'file' are not supported"):
        llm.worker.invoke(
            ChatRequest(model="gemini-2.5-flash", messages=[WorkerMessage("user", doc)])
        )


def test_video_becomes_file_data_or_frames(llm, emulator):
    video = [
        {"type": "text", "text": "what happens?"},
        {"type": "video", "video": "https://www.youtube.com/watch?v=abc"},
        {"type": "video", "video": ["https://example.com/1.png", "https://example.com/2.png"]},
    ]
    llm.worker.invoke(
        ChatRequest(model="gemini-2.5-flash", messages=[WorkerMessage("user", video)])
    )
    parts = sent(emulator)["contents"][0]["parts"]
    assert parts[1] == {
        "fileData": {"file_uri": "https://www.youtube.com/watch?v=abc", "mime_type": "video/mp4"}
    }
    assert [p["fileData"]["mime_type"] for p in parts[2:]] == ["image/png", "image/png"]
