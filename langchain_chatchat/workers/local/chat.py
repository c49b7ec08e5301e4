"""The local chat worker: chat template in, engine token ids out as incremental deltas.

The model is loaded on first use (or by `load()`), once per process, and all workers for the
same model share one `GenerationEngine`, so requests from every caller batch together.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from langchain_chatchat.workers.base import ChatWorker, MessageRules
from langchain_chatchat.workers.errors import (
    BadRequestError,
    ContextLengthError,
    UpstreamTimeoutError,
)
from langchain_chatchat.workers.local.engine import (
    Event,
    Finished,
    GenerationEngine,
    SamplingParams,
    Sink,
    Ticket,
)
from langchain_chatchat.workers.local.loading import ModelSource, load_causal_lm
from langchain_chatchat.workers.local.text import IncrementalDetokenizer, StopMatcher
from langchain_chatchat.workers.local.tools import (
    ToolCallParser,
    check_tool_template,
    forced_prefix,
)
from langchain_chatchat.workers.types import (
    ChatDelta,
    ChatRequest,
    FinishReason,
    ToolCallDelta,
    Usage,
    WorkerMessage,
)

_ENGINES: dict[tuple[int, int, int], GenerationEngine] = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine(model: PreTrainedModel, max_batch_size: int, max_queue: int) -> GenerationEngine:
    """One engine per loaded model and settings, so every worker's requests batch together."""
    key = (id(model), max_batch_size, max_queue)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = GenerationEngine(
                model, max_batch_size=max_batch_size, max_queue=max_queue
            )
        return _ENGINES[key]


@dataclass(frozen=True)
class LocalModel:
    """A loaded model with what requests need to know about it."""

    tokenizer: PreTrainedTokenizerBase
    engine: GenerationEngine
    context_length: int
    stop_token_ids: frozenset[int]
    temperature: float
    """Default when a request sets none: the model's generation config, greedy if it samples not."""
    top_p: float

    @classmethod
    def load(
        cls, source: ModelSource, dtype: str | None, max_batch_size: int, max_queue: int
    ) -> LocalModel:
        model, tokenizer = load_causal_lm(source, dtype)
        generation = model.generation_config
        eos = generation.eos_token_id
        stop_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            stop_ids.add(tokenizer.eos_token_id)
        return cls(
            tokenizer=tokenizer,
            engine=shared_engine(model, max_batch_size, max_queue),
            context_length=getattr(model.config, "max_position_embeddings", None)
            or tokenizer.model_max_length,
            stop_token_ids=frozenset(stop_ids),
            temperature=(generation.temperature or 1.0) if generation.do_sample else 0.0,
            top_p=(generation.top_p or 1.0) if generation.do_sample else 1.0,
        )


class LocalChatWorker(ChatWorker):
    """Chat with a transformers causal LM running in this process."""

    provider = "local"
    message_rules = MessageRules(system="first", tools=True, images=False)

    def __init__(
        self,
        model: str,
        *,
        gguf_file: str | None = None,
        dtype: str | None = None,
        chat_template: str | None = None,
        max_batch_size: int = 8,
        max_queue: int = 64,
        timeout: float | None = 60.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(timeout=timeout, max_retries=max_retries)
        self.model = model
        self.gguf_file = gguf_file
        self.dtype = dtype
        self.chat_template = chat_template
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        ModelSource.resolve(model, gguf_file)  # a missing model wheel fails now, at start-up
        self._loaded: LocalModel | None = None
        self._load_lock = threading.Lock()

    def load(self) -> LocalModel:
        """Load the model now (otherwise the first request does)."""
        with self._load_lock:
            if self._loaded is None:
                source = ModelSource.resolve(self.model, self.gguf_file)
                self._loaded = LocalModel.load(
                    source, self.dtype, self.max_batch_size, self.max_queue
                )
            return self._loaded

    @property
    def engine(self) -> GenerationEngine:
        return self.load().engine

    # -- transport -----------------------------------------------------------------------
    def _call(self, request: ChatRequest) -> Iterator[ChatDelta]:
        reply = self._start(request)
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        ticket = reply.submit(events.put)
        try:
            while not reply.done:
                try:
                    event = events.get(timeout=self.timeout)
                except queue.Empty:
                    raise self._timeout() from None
                yield from reply.feed(event)
        finally:  # also on GeneratorExit: a consumer that stops early stops the generation
            ticket.cancel()

    async def _acall(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        if self._loaded is None:
            await asyncio.to_thread(self.load)
        reply = self._start(request)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event | _Deadline] = asyncio.Queue()
        ticket = reply.submit(lambda event: loop.call_soon_threadsafe(events.put_nowait, event))
        try:
            while not reply.done:
                try:
                    event = await _next_event(events, self.timeout)
                except TimeoutError:
                    raise self._timeout() from None
                for delta in reply.feed(event):
                    yield delta
        finally:  # also on cancellation and aclose()
            ticket.cancel()

    def _timeout(self) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"local model {self.model!r} produced nothing for {self.timeout}s",
            provider=self.provider,
        )

    # -- translation ---------------------------------------------------------------------
    def prepare(self, request: ChatRequest) -> ChatRequest:
        request = super().prepare(request)
        if request.response_format and request.response_format.get("type") != "text":
            raise BadRequestError(
                "local models do not support response_format; use tool calling "
                "(with_structured_output(method='function_calling')) with a tool-capable model",
                provider=self.provider,
                param="response_format",
            )
        return request

    def _start(self, request: ChatRequest) -> _Reply:
        local = self.load()
        tools = request.tools if request.tool_choice != "none" else None
        template = self._template(local.tokenizer, tools)
        prefix, parser = "", None
        if tools:
            check_tool_template(template, self.model)
            prefix = forced_prefix(
                request.tool_choice, [tool["function"]["name"] for tool in tools]
            )
            parser = ToolCallParser()
            parser.push(prefix)  # a forced reply start is markup for the parser, not text
        try:
            prompt = local.tokenizer.apply_chat_template(
                _template_messages(request.messages),
                tools=tools,
                chat_template=template,
                add_generation_prompt=True,
                tokenize=False,
            )
        except TemplateError as error:
            raise BadRequestError(
                f"the chat template of {self.model!r} rejected the conversation: {error}",
                provider=self.provider,
                param="messages",
            ) from error
        prompt_ids = local.tokenizer(prompt + prefix, add_special_tokens=False)["input_ids"]
        room = local.context_length - len(prompt_ids)
        if room <= 0:
            raise ContextLengthError(
                f"the prompt has {len(prompt_ids)} tokens; "
                f"{self.model!r} takes at most {local.context_length}",
                provider=self.provider,
            )
        _check_sampling(request)
        params = SamplingParams(
            max_new_tokens=min(request.max_tokens or room, room),
            temperature=local.temperature if request.temperature is None else request.temperature,
            top_p=local.top_p if request.top_p is None else request.top_p,
            seed=request.seed,
            stop_token_ids=local.stop_token_ids,
        )
        return _Reply(local, prompt_ids, params, request.stop, request.model, parser)

    def _template(
        self, tokenizer: PreTrainedTokenizerBase, tools: list[dict[str, Any]] | None
    ) -> str:
        try:
            return tokenizer.get_chat_template(self.chat_template, tools)
        except ValueError as error:
            raise BadRequestError(
                f"local model {self.model!r} has no chat template; pass chat_template=...",
                provider=self.provider,
            ) from error


class _Deadline:
    """Marks in an event queue that a wait for the next event expired."""


async def _next_event(events: asyncio.Queue[Event | _Deadline], timeout: float | None) -> Event:
    """The next event, or TimeoutError after `timeout` seconds.

    Not `asyncio.wait_for`: on Python < 3.12 it can swallow a cancellation that races with an
    arriving event, and a cancelled consumer must stop the generation.
    """
    deadline = _Deadline()
    timer = (
        None
        if timeout is None
        else asyncio.get_running_loop().call_later(timeout, events.put_nowait, deadline)
    )
    try:
        while True:
            event = await events.get()
            if event is deadline:
                raise TimeoutError
            if not isinstance(event, _Deadline):  # skip an earlier wait's expired marker
                return event
    finally:
        if timer is not None:
            timer.cancel()


def _check_sampling(request: ChatRequest) -> None:
    if request.max_tokens is not None and request.max_tokens < 1:
        raise BadRequestError("max_tokens must be at least 1", provider="local", param="max_tokens")
    if request.temperature is not None and request.temperature < 0:
        raise BadRequestError("temperature must be >= 0", provider="local", param="temperature")
    if request.top_p is not None and not 0 < request.top_p <= 1:
        raise BadRequestError("top_p must be in (0, 1]", provider="local", param="top_p")


def _template_messages(messages: list[WorkerMessage]) -> list[dict[str, Any]]:
    """Worker messages in the shape transformers chat templates expect."""
    rendered = []
    for message in messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.text()}
        if message.tool_calls:
            entry["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": _json_or_text(call.arguments)},
                }
                for call in message.tool_calls
            ]
        if message.tool_call_id:
            entry["tool_call_id"] = message.tool_call_id
        if message.name:
            entry["name"] = message.name
        rendered.append(entry)
    return rendered


def _json_or_text(arguments: str) -> Any:
    # templates serialise arguments themselves (`| tojson`), so they want the object
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


class _Reply:
    """One request's way from engine events to deltas: text, stop sequences, tool calls, usage."""

    def __init__(
        self,
        local: LocalModel,
        prompt_ids: list[int],
        params: SamplingParams,
        stop: list[str] | None,
        model: str,
        tool_parser: ToolCallParser | None,
    ) -> None:
        self._local = local
        self._prompt_ids = prompt_ids
        self._params = params
        self._detokenizer = IncrementalDetokenizer(local.tokenizer)
        self._stops = StopMatcher(stop)
        self._tools = tool_parser
        self._model = model
        self._id = f"local-{uuid.uuid4().hex}"
        self._tokens = 0
        self.done = False

    def submit(self, sink: Sink) -> Ticket:
        return self._local.engine.submit(self._prompt_ids, self._params, sink)

    def feed(self, event: Event) -> list[ChatDelta]:
        if isinstance(event, Finished):
            return self._finish(event.reason, event.output_tokens)
        if isinstance(event, Exception):
            raise event
        self._tokens += 1
        text, calls = self._split(self._stops.push(self._detokenizer.add(event)))
        deltas = []
        if text or calls:
            deltas.append(
                ChatDelta(text=text, tool_calls=calls, request_id=self._id, model=self._model)
            )
        if self._stops.stopped:
            deltas += self._finish("stop", self._tokens)
        return deltas

    def _split(self, text: str, *, final: bool = False) -> tuple[str, list[ToolCallDelta]]:
        """Separate tool calls from text when tools are on; `final` flushes what is held."""
        if self._tools is None:
            return text, []
        text, calls = self._tools.push(text)
        if final:
            rest, more = self._tools.flush()
            text, calls = text + rest, calls + more
        return text, calls

    def _finish(self, reason: FinishReason, output_tokens: int) -> list[ChatDelta]:
        self.done = True
        text = ""
        if not self._stops.stopped:  # the text after a stop sequence is never shown
            text = self._stops.push(self._detokenizer.flush())
            text += self._stops.flush()
        text, calls = self._split(text, final=True)
        if reason == "stop" and self._tools is not None and self._tools.count:
            reason = "tool_calls"
        input_tokens = len(self._prompt_ids)
        return [
            ChatDelta(
                text=text,
                tool_calls=calls,
                finish_reason=reason,
                usage=Usage(input_tokens, output_tokens, input_tokens + output_tokens),
                request_id=self._id,
                model=self._model,
            )
        ]
