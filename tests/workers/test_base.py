"""The provider-neutral ChatWorker: message rules, retries, accumulation."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator, Iterator

import pytest

from langchain_chatchat.workers.base import ChatWorker, MessageRules
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    UpstreamUnavailableError,
)
from langchain_chatchat.workers.types import ChatDelta, ChatRequest, WorkerMessage, WorkerToolCall


class ScriptedWorker(ChatWorker):
    """Replays scripted attempts: each attempt is a list of deltas and/or an exception."""

    provider = "scripted"

    def __init__(self, attempts: list[list], rules: MessageRules | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.attempts = attempts
        self.calls = 0
        self.seen: list[ChatRequest] = []
        if rules is not None:
            self.message_rules = rules

    def _call(self, request: ChatRequest) -> Iterator[ChatDelta]:
        self.seen.append(request)
        attempt = self.attempts[self.calls]
        self.calls += 1
        for item in attempt:
            if isinstance(item, Exception):
                raise item
            yield item

    async def _acall(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        for delta in self._call(request):
            yield delta


def _request(*messages: WorkerMessage) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages) or [WorkerMessage("user", "hi")])


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(
        "langchain_chatchat.workers.retry.RetryPolicy.delay", lambda self, attempt, error: 0.0
    )


def test_retryable_error_before_first_delta_is_retried():
    worker = ScriptedWorker(
        [[RateLimitError("slow down")], [ChatDelta(text="ok", finish_reason="stop")]]
    )
    assert [d.text for d in worker.stream(_request())] == ["ok"]
    assert worker.calls == 2


async def test_async_retry_and_invoke():
    worker = ScriptedWorker(
        [[UpstreamUnavailableError("502")], [ChatDelta(text="ok", finish_reason="stop")]]
    )
    result = await worker.ainvoke(_request())
    assert result.text == "ok" and worker.calls == 2


def test_error_after_streaming_began_is_not_retried():
    worker = ScriptedWorker(
        [[ChatDelta(text="par"), UpstreamUnavailableError("dropped")], [ChatDelta(text="x")]]
    )
    received = []
    with pytest.raises(UpstreamUnavailableError):
        for delta in worker.stream(_request()):
            received.append(delta.text)
    assert received == ["par"] and worker.calls == 1


def test_non_retryable_errors_are_raised_at_once():
    worker = ScriptedWorker([[AuthenticationError("bad key")], [ChatDelta(text="never")]])
    with pytest.raises(AuthenticationError):
        worker.invoke(_request())
    assert worker.calls == 1


def test_retries_are_bounded():
    worker = ScriptedWorker([[RateLimitError("slow")]] * 5, max_retries=2)
    with pytest.raises(RateLimitError):
        worker.invoke(_request())
    assert worker.calls == 3


def test_leading_system_messages_are_kept_and_merged():
    worker = ScriptedWorker([[ChatDelta(text="ok", finish_reason="stop")]])
    worker.invoke(
        _request(
            WorkerMessage("system", "Be brief."),
            WorkerMessage("system", "Answer in French."),
            WorkerMessage("user", "hi"),
        )
    )
    sent = worker.seen[0].messages
    assert [m.role for m in sent] == ["system", "user"]
    assert sent[0].content == "Be brief.\n\nAnswer in French."


def test_system_message_mid_conversation_is_rejected_not_dropped():
    worker = ScriptedWorker([])
    with pytest.raises(BadRequestError, match="system message"):
        worker.invoke(_request(WorkerMessage("user", "hi"), WorkerMessage("system", "late")))


def test_fold_rule_prepends_system_text_to_first_user_turn():
    worker = ScriptedWorker(
        [[ChatDelta(text="ok", finish_reason="stop")]], rules=MessageRules(system="fold")
    )
    worker.invoke(_request(WorkerMessage("system", "Be brief."), WorkerMessage("user", "hi")))
    assert [(m.role, m.content) for m in worker.seen[0].messages] == [("user", "Be brief.\n\nhi")]


def test_alternation_and_merging_rules():
    strict = ScriptedWorker([], rules=MessageRules(alternate=True))
    with pytest.raises(BadRequestError, match="alternating"):
        strict.invoke(_request(WorkerMessage("user", "a"), WorkerMessage("user", "b")))
    merging = ScriptedWorker(
        [[ChatDelta(text="ok", finish_reason="stop")]],
        rules=MessageRules(alternate=True, merge_consecutive=True),
    )
    merging.invoke(_request(WorkerMessage("user", "a"), WorkerMessage("user", "b")))
    assert [(m.role, m.content) for m in merging.seen[0].messages] == [("user", "a\n\nb")]


def test_tool_turns_count_as_the_assistant_step():
    worker = ScriptedWorker(
        [[ChatDelta(text="ok", finish_reason="stop")]], rules=MessageRules(alternate=True)
    )
    worker.invoke(
        _request(
            WorkerMessage("user", "2+3?"),
            WorkerMessage(
                "assistant", "", tool_calls=[WorkerToolCall("c1", "add", '{"a": 2, "b": 3}')]
            ),
            WorkerMessage("tool", "5", tool_call_id="c1"),
            WorkerMessage("assistant", "5"),
            WorkerMessage("user", "thanks"),
        )
    )
    assert worker.calls == 1


def test_invalid_messages_fail_fast_with_typed_errors():
    worker = ScriptedWorker([])
    with pytest.raises(BadRequestError, match="tool_call_id"):
        worker.invoke(_request(WorkerMessage("tool", "5")))
    with pytest.raises(BadRequestError, match="only text"):
        worker.invoke(
            _request(WorkerMessage("user", [{"type": "image_url", "image_url": {"url": "x"}}]))
        )
    with pytest.raises(BadRequestError, match="at least one"):
        worker.invoke(ChatRequest(model="m", messages=[]))
    no_tools = ScriptedWorker([], rules=MessageRules(tools=False))
    with pytest.raises(BadRequestError, match="tool calling"):
        no_tools.invoke(
            ChatRequest(
                model="m", messages=[WorkerMessage("user", "hi")], tools=[{"type": "function"}]
            )
        )
    assert worker.calls == 0


def test_errors_survive_pickling_with_their_details():
    error = RateLimitError(
        "slow down", provider="qwen", code="Throttling", request_id="r1", retry_after=2.0
    )
    clone = pickle.loads(pickle.dumps(error))
    assert (type(clone), clone.code, clone.request_id, clone.retry_after, clone.retryable) == (
        RateLimitError,
        "Throttling",
        "r1",
        2.0,
        True,
    )
    assert "Throttling" in str(clone) and "r1" in str(clone)
