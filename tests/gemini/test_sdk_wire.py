"""The official google-genai SDK against GeminiEmulator: wire shapes and the rules the emulator
enforces (each as the real API answers it: HTTP status, google.rpc status, message)."""

from __future__ import annotations

import base64

import pytest
from google import genai
from google.genai import errors, types

from langchain_chatchat.testing import Fault, Reply, ToolCallReply

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather at a place",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


@pytest.fixture
def client(emulator) -> genai.Client:
    return genai.Client(
        api_key=emulator.api_key, http_options=types.HttpOptions(base_url=emulator.base_url)
    )


def _refused(call, status: int, rpc: str, message: str) -> errors.APIError:
    with pytest.raises(errors.APIError) as caught:
        call()
    error = caught.value
    assert (error.code, error.status) == (status, rpc)
    assert message in error.message
    return error


def test_generate_content_round_trip(client, emulator):
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="hello there")
    assert reply.text == "Hello! You said: hello there"
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    usage = reply.usage_metadata
    assert usage.prompt_token_count == 2 and usage.candidates_token_count == 7
    assert usage.thoughts_token_count  # 2.5 Flash thinks by default, without showing thoughts
    assert not any(part.thought for part in reply.candidates[0].content.parts)
    request = emulator.requests[-1]
    assert request.path.endswith("/models/gemini-2.5-flash:generateContent")
    assert request.headers["x-goog-api-key"] == emulator.api_key


def test_stream_is_incremental_sse(client, emulator):
    emulator.enqueue(Reply(text="one two three"))
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert [c.text for c in chunks] == ["one", " two", " three"]
    assert [c.candidates[0].finish_reason for c in chunks][-1] == types.FinishReason.STOP
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert emulator.requests[-1].path.endswith(":streamGenerateContent")


async def test_async_stream(client, emulator):
    emulator.enqueue(Reply(text="a b"))
    stream = await client.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    assert [c.text async for c in stream] == ["a", " b"]
    await client.aio.aclose()


def test_thoughts_and_function_calls(client, emulator):
    emulator.enqueue(
        Reply(reasoning="think", tool_calls=[ToolCallReply("get_weather", {"city": "Paris"})])
    )
    reply = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="weather?",
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[WEATHER])],
            thinking_config=types.ThinkingConfig(include_thoughts=True),
        ),
    )
    parts = reply.candidates[0].content.parts
    assert parts[0].thought and parts[0].text == "think"
    assert parts[1].function_call.name == "get_weather"
    assert parts[1].function_call.args == {"city": "Paris"}
    assert parts[1].thought_signature  # thinking models sign their function calls


def test_default_responder_follows_tool_config(client):
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode="ANY", allowed_function_names=["get_weather"]
            )
        ),
    )
    reply = client.models.generate_content(
        model="gemini-2.5-flash", contents="hello", config=config
    )
    assert reply.function_calls[0].name == "get_weather"


def test_json_schema_output(client):
    reply = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="a person",
        config=types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema={
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name", "age"],
            },
        ),
    )
    assert set(reply.parsed) == {"name", "age"}


def test_embeddings_batch_and_single(client, emulator):
    reply = client.models.embed_content(
        model="gemini-embedding-001",
        contents=["a", "b", "c"],
        config=types.EmbedContentConfig(output_dimensionality=32, task_type="RETRIEVAL_QUERY"),
    )
    assert [len(e.values) for e in reply.embeddings] == [32, 32, 32]
    body = emulator.requests[-1].body
    assert emulator.requests[-1].path.endswith(":batchEmbedContents")
    assert body["requests"][0]["model"] == "models/gemini-embedding-001"


# -- what the API refuses --------------------------------------------------------------------


def test_invalid_key(emulator):
    bad = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=emulator.base_url))
    error = _refused(
        lambda: bad.models.generate_content(model="gemini-2.5-flash", contents="x"),
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
    )
    assert error.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_unknown_model(client):
    _refused(
        lambda: client.models.generate_content(model="gemini-0-nope", contents="x"),
        404,
        "NOT_FOUND",
        "models/gemini-0-nope is not found for API version v1",
    )
    _refused(  # an embedding model cannot generate
        lambda: client.models.generate_content(model="gemini-embedding-001", contents="x"),
        404,
        "NOT_FOUND",
        "is not supported for generateContent",
    )


def test_turn_rules(client):
    call = types.Part(function_call=types.FunctionCall(name="get_weather", args={"city": "P"}))
    answer = types.Part(
        function_response=types.FunctionResponse(name="get_weather", response={"result": "sun"})
    )
    tools = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])

    def send(contents, model="gemini-2.5-flash"):
        return lambda: client.models.generate_content(model=model, contents=contents, config=tools)

    _refused(
        send(
            [types.Content(role="model", parts=[call]), types.Content(role="user", parts=[answer])]
        ),
        400,
        "INVALID_ARGUMENT",
        "function call turn comes immediately after a user turn",
    )
    _refused(
        send([types.Content(role="user", parts=[answer])]),
        400,
        "INVALID_ARGUMENT",
        "function response turn comes immediately after a function call turn",
    )
    _refused(
        send([types.Content(role="assistant", parts=[types.Part(text="hi")])]),
        400,
        "INVALID_ARGUMENT",
        "Please use a valid role: user, model.",
    )
    turns = [
        types.Content(role="user", parts=[types.Part(text="weather?")]),
        types.Content(role="model", parts=[call]),
        types.Content(role="user", parts=[answer]),
    ]
    assert client.models.generate_content(
        model="gemini-2.5-flash", contents=turns, config=tools
    ).text
    _refused(  # Gemini 3 wants the thought signature of replayed calls
        send(turns, model="gemini-3-pro-preview"),
        400,
        "INVALID_ARGUMENT",
        "Function call is missing a thought_signature in functionCall parts",
    )
    forged = types.Part(function_call=call.function_call, thought_signature=b"forged signature")
    turns[1] = types.Content(role="model", parts=[forged])
    _refused(send(turns, model="gemini-3-pro-preview"), 400, "INVALID_ARGUMENT", "not valid")
    skip = base64.urlsafe_b64decode("skip_thought_signature_validator")
    turns[1] = types.Content(
        role="model", parts=[types.Part(function_call=call.function_call, thought_signature=skip)]
    )
    assert client.models.generate_content(
        model="gemini-3-pro-preview", contents=turns, config=tools
    ).text


def test_generation_config_ranges(client):
    def send(**config):
        return lambda: client.models.generate_content(
            model="gemini-2.5-flash", contents="x", config=config
        )

    _refused(send(temperature=2.5), 400, "INVALID_ARGUMENT", "temperature")
    _refused(send(top_p=1.5), 400, "INVALID_ARGUMENT", "top_p")
    _refused(send(max_output_tokens=70_000), 400, "INVALID_ARGUMENT", "max_output_tokens")
    _refused(
        send(response_json_schema={"type": "object"}),
        400,
        "INVALID_ARGUMENT",
        "response_mime_type",
    )
    _refused(
        lambda: client.models.generate_content(
            model="gemini-2.5-pro", contents="x", config={"thinking_config": {"thinking_budget": 0}}
        ),
        400,
        "INVALID_ARGUMENT",
        "Budget 0 is invalid. This model only works in thinking mode.",
    )
    _refused(
        send(tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="9 bad")])]),
        400,
        "INVALID_ARGUMENT",
        "Invalid function name",
    )


def test_empty_contents_and_parts(emulator):
    import httpx

    url = f"{emulator.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    headers = {"x-goog-api-key": emulator.api_key}
    empty = httpx.post(url, json={"contents": []}, headers=headers)
    assert empty.status_code == 400 and empty.json()["error"]["status"] == "INVALID_ARGUMENT"
    no_parts = httpx.post(url, json={"contents": [{"role": "user", "parts": []}]}, headers=headers)
    assert "contents.parts must not be empty" in no_parts.json()["error"]["message"]
    unknown = httpx.post(
        url, json={"contents": [{"parts": [{"text": "x"}]}], "temprature": 1}, headers=headers
    )
    assert 'Unknown name "temprature"' in unknown.json()["error"]["message"]
    missing = httpx.post(url, json={"contents": [{"parts": [{"text": "x"}]}]})
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(b"png").decode()}}
    broken = httpx.post(
        url, json={"contents": [{"parts": [{"text": "x"}, image]}]}, headers=headers
    )
    assert broken.status_code == 400
    assert "Unable to process input image" in broken.json()["error"]["message"]


def test_embedding_batch_limit(client):
    _refused(
        lambda: client.models.embed_content(
            model="gemini-embedding-001", contents=[str(i) for i in range(101)]
        ),
        400,
        "INVALID_ARGUMENT",
        "at most 100 requests can be in one batch",
    )


def test_scripted_faults(client, emulator):
    emulator.enqueue(Fault.http(429, "", "Resource has been exhausted (e.g. check quota)."))
    _refused(
        lambda: client.models.generate_content(model="gemini-2.5-flash", contents="x"),
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted",
    )
    emulator.enqueue(Fault.stream_error(2, "", "Internal error encountered.", status=500))
    received = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="x"):
            received.append(chunk.text)
    assert caught.value.status == "INTERNAL" and len(received) == 2


def test_stream_without_sse_is_a_json_array(emulator):
    import httpx

    emulator.enqueue(Reply(text="a b"))
    url = f"{emulator.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    reply = httpx.post(
        url,
        json={"contents": [{"parts": [{"text": "x"}]}]},
        headers={"x-goog-api-key": emulator.api_key},
    )
    chunks = reply.json()
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == ["a", " b"]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_embed_content_single(emulator):
    import httpx

    url = f"{emulator.base_url}/v1beta/models/text-embedding-004:embedContent"
    headers = {"x-goog-api-key": emulator.api_key}
    body = {"content": {"parts": [{"text": "hello"}]}, "taskType": "RETRIEVAL_QUERY"}
    reply = httpx.post(url, json=body, headers=headers)
    assert len(reply.json()["embedding"]["values"]) == 768
    titled = httpx.post(url, json={**body, "title": "doc"}, headers=headers)
    assert titled.status_code == 400 and "RETRIEVAL_DOCUMENT" in titled.json()["error"]["message"]


def test_more_refusals(client):
    weather = types.Tool(function_declarations=[WEATHER])

    def send(model="gemini-2.5-flash", contents="x", **config):
        return lambda: client.models.generate_content(model=model, contents=contents, config=config)

    call = types.Part(function_call=types.FunctionCall(name="get_weather", args={"city": "P"}))
    answer = types.Part(
        function_response=types.FunctionResponse(name="get_weather", response={"result": "x"})
    )
    turns = [
        types.Content(role="user", parts=[types.Part(text="weather?")]),
        types.Content(role="model", parts=[call, call]),
        types.Content(role="user", parts=[answer]),
    ]
    _refused(
        send(contents=turns, tools=[weather]),
        400,
        "INVALID_ARGUMENT",
        "number of function response parts",
    )
    _refused(
        send(
            tools=[weather],
            tool_config={
                "function_calling_config": {
                    "mode": "AUTO",
                    "allowed_function_names": ["get_weather"],
                }
            },
        ),
        400,
        "INVALID_ARGUMENT",
        "allowed_function_names",
    )
    _refused(
        send(
            tools=[weather],
            tool_config={
                "function_calling_config": {"mode": "ANY", "allowed_function_names": ["nope"]}
            },
        ),
        400,
        "INVALID_ARGUMENT",
        "undeclared",
    )
    _refused(
        send(model="gemini-2.0-flash", thinking_config={"thinking_budget": 1024}),
        400,
        "INVALID_ARGUMENT",
        "Thinking is not enabled",
    )
    _refused(
        send(thinking_config={"thinking_budget": 99_999}),
        400,
        "INVALID_ARGUMENT",
        "between 0 and 24576",
    )
    _refused(
        send(thinking_config={"thinking_level": "high"}), 400, "INVALID_ARGUMENT", "Thinking level"
    )
    _refused(send(stop_sequences=list("abcdef")), 400, "INVALID_ARGUMENT", "stop_sequences")
    _refused(send(candidate_count=9), 400, "INVALID_ARGUMENT", "candidate_count")
    image = types.Part(inline_data=types.Blob(mime_type="image/bmp", data=b"BM"))
    _refused(
        send(contents=[types.Content(role="user", parts=[image])]),
        400,
        "INVALID_ARGUMENT",
        "Unsupported MIME type",
    )
    assert client.models.generate_content(
        model="gemini-3-pro-preview",
        contents="x",
        config={"thinking_config": {"thinking_level": "low"}},
    ).text
