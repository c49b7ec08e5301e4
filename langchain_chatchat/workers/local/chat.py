"""The local chat worker: chat template in, engine token ids out as incremental deltas.

The model is loaded on first use (or by `load()`), once per process, and all workers for the
same model and engine share one engine, so requests from every caller batch together. Two
engines sit behind the same request path: transformers (any Hugging Face model) and llama.cpp
(GGUF files, several times faster on CPU); see `resolve_engine` for which one "auto" picks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import TemplateError

from langchain_chatchat.workers.base import ChatWorker, MessageRules
from langchain_chatchat.workers.errors import (
    BadRequestError,
    ContextLengthError,
    UpstreamTimeoutError,
)
from langchain_chatchat.workers.local import llama
from langchain_chatchat.workers.local.codec import Codec, HFCodec, LlamaCodec
from langchain_chatchat.workers.local.devices import Placement
from langchain_chatchat.workers.local.loading import ModelSource, load_causal_lm
from langchain_chatchat.workers.local.sampling import SamplingParams
from langchain_chatchat.workers.local.scheduler import (
    BatchScheduler,
    Event,
    Finished,
    Sink,
    Ticket,
)
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

logger = logging.getLogger(__name__)

EngineName = Literal["auto", "transformers", "llama_cpp"]

_ENGINES: dict[tuple[Any, ...], BatchScheduler] = {}
_ENGINES_LOCK = threading.Lock()


def _shared_engine(key: tuple[Any, ...], build) -> BatchScheduler:
    """One engine per loaded model and settings, so every worker's requests batch together."""
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = build()
        return _ENGINES[key]


def resolve_engine(engine: EngineName, source: ModelSource) -> Literal["transformers", "llama_cpp"]:
    """ "auto": llama.cpp for a GGUF file when llama-cpp-python is installed, else transformers."""
    if engine == "llama_cpp":
        if source.gguf_file is None:
            raise BadRequestError(
                f"engine 'llama_cpp' runs GGUF files; {source.location!r} is not one "
                "(pass a .gguf path, or gguf_file=...)",
                provider="local",
                param="engine",
            )
        return "llama_cpp"
    if engine == "transformers":
        return "transformers"
    if engine != "auto":
        raise BadRequestError(
            f"unknown engine {engine!r}; use 'auto', 'transformers' or 'llama_cpp'",
            provider="local",
            param="engine",
        )
    if source.gguf_file is not None and llama.available():
        return "llama_cpp"
    return "transformers"


@dataclass(frozen=True)
class LocalModel:
    """A loaded model with what requests need to know about it."""

    codec: Codec
    engine: BatchScheduler
    engine_name: str
    context_length: int
    stop_token_ids: frozenset[int]
    temperature: float
    """Default when a request sets none: the model's generation config, greedy if it samples not."""
    top_p: float

    @classmethod
    def load(
        cls,
        name: str,
        source: ModelSource,
        engine: EngineName,
        placement: Placement,
        max_batch_size: int | None,
        max_queue: int,
        prompt_cache: bool = True,
    ) -> LocalModel:
        started = time.perf_counter()
        if resolve_engine(engine, source) == "llama_cpp":
            loaded = cls._load_llama(name, source, max_batch_size or 8, max_queue, prompt_cache)
        else:
            loaded = cls._load_transformers(
                name, source, placement, max_batch_size, max_queue, prompt_cache
            )
        logger.info(
            "local model %r ready on %s in %.1fs",
            name,
            loaded.engine_name,
            time.perf_counter() - started,
        )
        return loaded

    @classmethod
    def _load_transformers(
        cls,
        name: str,
        source: ModelSource,
        placement: Placement,
        max_batch_size: int | None,
        max_queue: int,
        prompt_cache: bool,
    ) -> LocalModel:
        model, tokenizer = load_causal_lm(source, placement)
        batch = max_batch_size or placement.batch_size_for(model)
        generation = model.generation_config
        eos = generation.eos_token_id
        stop_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            stop_ids.add(tokenizer.eos_token_id)
        from langchain_chatchat.workers.local.engine import GenerationEngine

        engine = _shared_engine(
            ("transformers", id(model), batch, max_queue, prompt_cache),
            lambda: GenerationEngine(
                model,
                max_batch_size=batch,
                max_queue=max_queue,
                prompt_cache=prompt_cache,
                label=name,
            ),
        )
        return cls(
            codec=HFCodec(tokenizer),
            engine=engine,
            engine_name=f"transformers ({model.device}, {model.dtype})",
            context_length=getattr(model.config, "max_position_embeddings", None)
            or tokenizer.model_max_length,
            stop_token_ids=frozenset(stop_ids),
            temperature=(generation.temperature or 1.0) if generation.do_sample else 0.0,
            top_p=(generation.top_p or 1.0) if generation.do_sample else 1.0,
        )

    @classmethod
    def _load_llama(
        cls,
        name: str,
        source: ModelSource,
        max_batch_size: int,
        max_queue: int,
        prompt_cache: bool,
    ) -> LocalModel:
        assert source.gguf_file is not None
        gguf = llama.load_gguf(Path(source.location) / source.gguf_file)
        engine = _shared_engine(
            ("llama_cpp", gguf.path, max_batch_size, max_queue, prompt_cache),
            lambda: llama.LlamaCppEngine(
                gguf,
                max_batch_size=max_batch_size,
                max_queue=max_queue,
                prompt_cache=prompt_cache,
                label=name,
            ),
        )
        return cls(
            codec=LlamaCodec(gguf.llama),
            engine=engine,
            engine_name=f"llama.cpp (cpu, {llama.cpu_threads()} threads)",
            context_length=gguf.context_length,
            stop_token_ids=gguf.eos_token_ids(),
            temperature=0.0,  # a GGUF carries no generation config: greedy unless asked
            top_p=1.0,
        )


class LocalChatWorker(ChatWorker):
    """Chat with a local model running in this process (transformers or llama.cpp)."""

    provider = "local"
    message_rules = MessageRules(system="first", tools=True, images=False)

    def __init__(
        self,
        model: str,
        *,
        gguf_file: str | None = None,
        engine: EngineName = "auto",
        placement: Placement | None = None,
        chat_template: str | None = None,
        max_batch_size: int | None = None,
        max_queue: int = 64,
        prompt_cache: bool = True,
        default_max_tokens: int | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(timeout=timeout, max_retries=max_retries)
        self.model = model
        self.gguf_file = gguf_file
        self.engine_name = engine
        self.placement = placement or Placement()
        self.chat_template = chat_template
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.prompt_cache = prompt_cache
        self.default_max_tokens = default_max_tokens
        ModelSource.resolve(model, gguf_file)  # a missing model wheel fails now, at start-up
        self._loaded: LocalModel | None = None
        self._load_lock = threading.Lock()

    def load(self) -> LocalModel:
        """Load the model now (otherwise the first request does)."""
        with self._load_lock:
            if self._loaded is None:
                source = ModelSource.resolve(self.model, self.gguf_file)
                self._loaded = LocalModel.load(
                    self.model,
                    source,
                    self.engine_name,
                    self.placement,
                    self.max_batch_size,
                    self.max_queue,
                    self.prompt_cache,
                )
            return self._loaded

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def warm(self) -> None:
        """Load, then generate one token through the whole request path."""
        request = ChatRequest(
            model=self.model, messages=[WorkerMessage(role="user", content="Hi")], max_tokens=1
        )
        for _ in self._call(request):
            pass

    @property
    def engine(self) -> BatchScheduler:
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

        def deliver(event: Event) -> None:  # called on the engine's thread
            loop.call_soon_threadsafe(events.put_nowait, event)

        ticket = reply.submit(deliver)
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
        template = self._template(local.codec, tools)
        prefix, parser = "", None
        if tools:
            check_tool_template(template, self.model)
            prefix = forced_prefix(
                request.tool_choice, [tool["function"]["name"] for tool in tools]
            )
            parser = ToolCallParser()
            parser.push(prefix)  # a forced reply start is markup for the parser, not text
        try:
            prompt = local.codec.render(_template_messages(request.messages), tools, template)
        except TemplateError as error:
            raise BadRequestError(
                f"the chat template of {self.model!r} rejected the conversation: {error}",
                provider=self.provider,
                param="messages",
            ) from error
        prompt_ids = local.codec.encode(prompt + prefix)
        room = local.context_length - len(prompt_ids)
        if room <= 0:
            raise ContextLengthError(
                f"the prompt has {len(prompt_ids)} tokens; "
                f"{self.model!r} takes at most {local.context_length}",
                provider=self.provider,
            )
        params = self._sampling(request, local, room)
        return _Reply(local, prompt_ids, params, request.stop, request.model, parser)

    def _sampling(self, request: ChatRequest, local: LocalModel, room: int) -> SamplingParams:
        _check_sampling(request)
        extra = _sampling_extras(request.extra)
        wanted = request.max_tokens or self.default_max_tokens or room
        return SamplingParams(
            max_new_tokens=min(wanted, room),
            temperature=local.temperature if request.temperature is None else request.temperature,
            top_p=local.top_p if request.top_p is None else request.top_p,
            seed=request.seed,
            stop_token_ids=local.stop_token_ids,
            **extra,
        )

    def _template(self, codec: Codec, tools: list[dict[str, Any]] | None) -> str:
        try:
            return codec.template(self.chat_template, tools)
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


# per-call sampling options beyond OpenAI's fields: name -> (type, check, what a valid value is)
_EXTRA_SAMPLING: dict[str, tuple[type, Any, str]] = {
    "top_k": (int, lambda value: value >= 0, ">= 0 (0: off)"),
    "min_p": (float, lambda value: 0 <= value <= 1, "in [0, 1]"),
    "repetition_penalty": (float, lambda value: value > 0, "> 0 (1: off)"),
    "presence_penalty": (float, lambda value: -2 <= value <= 2, "in [-2, 2]"),
    "frequency_penalty": (float, lambda value: -2 <= value <= 2, "in [-2, 2]"),
}


def _sampling_extras(extra: dict[str, Any]) -> dict[str, Any]:
    """The request's extra sampling options, checked; anything else in `extra` is refused."""
    options: dict[str, Any] = {}
    for name, value in extra.items():
        if name == "parallel_tool_calls":  # the parser takes every call the model writes
            continue
        if name not in _EXTRA_SAMPLING:
            raise BadRequestError(
                f"local models take no parameter {name!r}", provider="local", param=name
            )
        if value is None:
            continue
        kind, valid, rule = _EXTRA_SAMPLING[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value):
            raise BadRequestError(f"{name} must be {rule}", provider="local", param=name)
        if kind is int and value != int(value):
            raise BadRequestError(f"{name} must be an integer", provider="local", param=name)
        options[name] = kind(value)
    return options


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
        self._detokenizer = IncrementalDetokenizer(local.codec)
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
