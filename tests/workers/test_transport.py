"""Translation without sockets (payload in, deltas out) through `MockTransport`; SSE parsing;
the default transport's error mapping and session lifetime."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from langchain_chatchat.workers.azure import AzureOpenAIWorker
from langchain_chatchat.workers.errors import (
    BadRequestError,
    ChatchatError,
    ContentFilterError,
    ContextLengthError,
    ErrorTable,
    RateLimitError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamUnavailableError,
)
from langchain_chatchat.workers.minimax import MiniMaxEmbeddingWorker, MiniMaxWorker
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker
from langchain_chatchat.workers.spark import SparkWorker
from langchain_chatchat.workers.transport import (
    HTTPRequest,
    HTTPTransport,
    MockReply,
    MockTransport,
    SSEDecoder,
    sse_data,
)
from langchain_chatchat.workers.types import ChatRequest, EmbeddingRequest, WorkerMessage
from langchain_chatchat.workers.zhipu import ZhipuWorker

HI = [WorkerMessage("user", "hi")]
STREAM = [
    {"id": "c1", "model": "m-1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
    {"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
    {"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    "[DONE]",
]


def body_of(request: HTTPRequest) -> dict:
    return json.loads(request.body)


# -- SSE ---------------------------------------------------------------------------------------
def test_sse_events_split_anywhere_are_joined():
    raw = b': comment\r\nevent: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata:[DONE]\n\ndata: cut'
    for size in (1, 2, 5, len(raw)):
        pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert list(sse_data(pieces)) == [b'{"a":\n1}', b"[DONE]"]


def test_sse_decoder_keeps_state_between_feeds():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a") == []
    assert decoder.feed(b"b\n") == []
    assert decoder.feed(b"\n") == [b"ab"]


# -- chat translation ---------------------------------------------------------------------------
def openai_worker(handler) -> tuple[OpenAICompatibleWorker, MockTransport]:
    transport = MockTransport(handler)
    worker = OpenAICompatibleWorker(
        api_key="sk-test", base_url="http://upstream/v1", transport=transport, max_retries=0
    )
    return worker, transport


def test_streamed_payload_and_deltas():
    worker, transport = openai_worker(lambda request: MockReply.sse(*STREAM))
    request = ChatRequest(model="m", messages=HI, temperature=0.5, stop=["x"])
    deltas = list(worker.stream(request))
    sent = transport.requests[0]
    assert sent.url == "http://upstream/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-test"
    assert body_of(sent) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.5,
        "stop": ["x"],
    }
    assert [d.text for d in deltas] == ["Hel", "lo", ""]
    final = deltas[-1]
    assert final.finish_reason == "stop" and final.model == "m-1" and final.request_id == "c1"
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (
        3,
        2,
    )


async def test_async_invoke_gives_the_same_result():
    reply = {
        "id": "c2",
        "model": "m",
        "choices": [{"message": {"content": "Hello"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }
    worker, transport = openai_worker(lambda request: MockReply.json(reply))
    result = await worker.ainvoke(ChatRequest(model="m", messages=HI))
    assert (result.text, result.finish_reason, result.request_id) == ("Hello", "length", "c2")
    assert body_of(transport.requests[0])["stream"] is False


async def test_async_stream_matches_sync_stream():
    worker, _ = openai_worker(lambda request: MockReply.sse(*STREAM))
    request = ChatRequest(model="m", messages=HI)
    sync = list(worker.stream(request))
    asynchronous = [delta async for delta in worker.astream(request)]
    assert sync == asynchronous


def test_a_stream_cut_before_its_end_is_a_connection_error():
    worker, _ = openai_worker(lambda request: MockReply.sse(*STREAM[:1]))
    with pytest.raises(UpstreamConnectionError):
        list(worker.stream(ChatRequest(model="m", messages=HI)))


def test_plain_json_answer_to_a_stream_request_is_one_delta():
    reply = {"choices": [{"message": {"content": "whole"}, "finish_reason": "stop"}]}
    worker, _ = openai_worker(lambda request: MockReply.json(reply))
    deltas = list(worker.stream(ChatRequest(model="m", messages=HI)))
    assert [(d.text, d.finish_reason) for d in deltas] == [("whole", "stop")]


def test_bad_input_fails_before_any_request():
    worker, transport = openai_worker(lambda request: MockReply.json({}))
    with pytest.raises(BadRequestError):
        worker.invoke(ChatRequest(model="m", messages=[]))
    assert transport.requests == []


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            MockReply.json({"error": {"message": "slow down"}}, 429, **{"retry-after": "2"}),
            RateLimitError,
        ),
        (MockReply.json({"error": {"message": "boom"}}, 503), UpstreamServerError),
        (
            MockReply(502, {"content-type": "text/html"}, b"<html>bad gateway</html>"),
            UpstreamServerError,
        ),
        (
            MockReply.json({"error": {"message": "maximum context length is 8k"}}, 400),
            ContextLengthError,
        ),
        (
            MockReply.json({"error": {"code": "content_filter", "message": "no"}}, 400),
            ContentFilterError,
        ),
        (MockReply.sse({"error": {"message": "mid-stream", "code": 500}}), UpstreamServerError),
    ],
)
def test_error_replies_are_typed(reply, expected):
    worker, _ = openai_worker(lambda request: reply)
    with pytest.raises(ChatchatError) as raised:
        list(worker.stream(ChatRequest(model="m", messages=HI)))
    assert type(raised.value) is expected and raised.value.provider == "openai_compatible"
    if expected is RateLimitError:
        assert raised.value.retry_after == 2


def test_retryable_errors_are_retried_through_the_transport():
    replies = iter([MockReply.json({"error": {"message": "busy"}}, 503), MockReply.sse(*STREAM)])
    transport = MockTransport(lambda request: next(replies))
    worker = OpenAICompatibleWorker(base_url="http://u", transport=transport, max_retries=1)
    worker.retry_policy = type(worker.retry_policy)(max_retries=1, base_delay=0, max_delay=0)
    deltas = worker.stream(ChatRequest(model="m", messages=HI))
    assert "".join(delta.text for delta in deltas) == "Hello"
    assert len(transport.requests) == 2


def test_minimax_errors_inside_a_200_body_use_its_code_table():
    body = {"base_resp": {"status_code": 1002, "status_msg": "rpm limit"}, "id": "r1"}
    transport = MockTransport(lambda request: MockReply.json(body))
    worker = MiniMaxWorker(api_key="k", transport=transport, max_retries=0, group_id="g1")
    with pytest.raises(RateLimitError) as raised:
        worker.invoke(ChatRequest(model="abab", messages=HI))
    assert (raised.value.code, raised.value.request_id) == ("1002", "r1")
    assert transport.requests[0].params == {"GroupId": "g1"}


def test_minimax_embeddings_share_the_endpoint():
    body = {"base_resp": {"status_code": 1004, "status_msg": "bad key"}}
    worker = MiniMaxEmbeddingWorker(
        api_key="k", transport=MockTransport(lambda r: MockReply.json(body)), max_retries=0
    )
    with pytest.raises(ChatchatError) as raised:
        worker.embed(EmbeddingRequest(model="embo-01", texts=["a"]))
    assert type(raised.value).__name__ == "AuthenticationError"


def test_spark_in_body_codes_and_sid():
    body = {"code": 10907, "message": "too long", "sid": "sid-1"}
    worker = SparkWorker(
        api_key="k", transport=MockTransport(lambda r: MockReply.json(body)), max_retries=0
    )
    with pytest.raises(ContextLengthError) as raised:
        worker.invoke(ChatRequest(model="lite", messages=HI))
    assert raised.value.request_id == "sid-1"


def test_error_table_matches_codes_prefixes_messages_then_status():
    table = ErrorTable({"Throttling": RateLimitError, "Bad": BadRequestError})
    assert table.classify(400, "Throttling.RateQuota", None, "") is RateLimitError
    assert table.classify(400, "Bad", None, "prompt is too long") is ContextLengthError
    assert table.classify(400, "Bad", None, "nope") is BadRequestError
    assert table.classify(503, "Other", None, "x") is None
    assert type(table.error(503, "x", code="Other")) is UpstreamServerError


def test_errors_join_langchain_cores_family():
    exceptions = pytest.importorskip("langchain_core.exceptions")
    if not hasattr(exceptions, "ModelConnectionError"):
        pytest.skip("this langchain-core has no model error classes")
    assert isinstance(RateLimitError("x"), exceptions.ModelRateLimitError)
    assert isinstance(ContextLengthError("x"), exceptions.ContextOverflowError)
    assert isinstance(ContextLengthError("x"), exceptions.ModelInvalidRequestError)
    assert isinstance(UpstreamConnectionError("x"), exceptions.ModelConnectionError)
    assert isinstance(UpstreamServerError("x"), exceptions.ModelAPIError)
    assert isinstance(UpstreamServerError("x"), UpstreamUnavailableError)
    assert UpstreamConnectionError("x").is_retryable
    assert not BadRequestError("x").is_retryable


# -- auth ---------------------------------------------------------------------------------------
def test_zhipu_signs_a_jwt_and_reuses_it():
    transport = MockTransport(lambda r: MockReply.sse(*STREAM))
    worker = ZhipuWorker(api_key="id.secret", transport=transport, max_retries=0)
    for _ in range(2):
        list(worker.stream(ChatRequest(model="glm-4", messages=HI)))
    first, second = (r.headers["Authorization"] for r in transport.requests)
    assert first == second and first.startswith("Bearer ") and first.count(".") == 2


def test_azure_deployment_url_key_header_and_api_version():
    transport = MockTransport(lambda r: MockReply.sse(*STREAM))
    worker = AzureOpenAIWorker(
        api_key="az",
        azure_endpoint="https://res.openai.azure.com/",
        deployment="gpt4o",
        transport=transport,
    )
    list(worker.stream(ChatRequest(model="gpt-4o", messages=HI)))
    sent = transport.requests[0]
    assert sent.url == "https://res.openai.azure.com/openai/deployments/gpt4o/chat/completions"
    assert sent.headers["api-key"] == "az" and "Authorization" not in sent.headers
    assert sent.params == {"api-version": "2024-10-21"}


# -- the default transport ----------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connections_are_connection_errors_sync_and_async():
    transport = HTTPTransport("up", timeout=5)
    request = HTTPRequest(f"http://127.0.0.1:{_closed_port()}/x", b"{}")
    with pytest.raises(UpstreamConnectionError):
        transport.post(request)

    async def apost():
        try:
            await transport.apost(request)
        finally:
            await transport.aclose()

    with pytest.raises(UpstreamConnectionError):
        asyncio.run(apost())
    transport.close()


def test_a_session_left_open_is_closed_when_its_loop_shuts_down():
    transport = HTTPTransport("up", timeout=5)

    async def open_session():
        return await transport._session()

    session = asyncio.run(open_session())  # no aclose(): the loop's shutdown closes it
    assert session.closed
