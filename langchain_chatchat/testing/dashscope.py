"""A wire-faithful emulator of Alibaba Cloud Model Studio's native DashScope HTTP API.

Written from the public reference (not from the OpenAI-compatible mode):

* text generation and its SSE stream: https://help.aliyun.com/zh/model-studio/qwen-api-reference
  (DashScope section) and https://www.alibabacloud.com/help/en/model-studio/stream ;
* error codes and messages: https://help.aliyun.com/zh/model-studio/error-code ;
* text embeddings: https://help.aliyun.com/en/model-studio/text-embedding-synchronous-api .

Point the official SDK at it with ``base_address=emu.base_url`` (per call) or
``dashscope.base_http_api_url = emu.base_url``.  Behaviours the reference does not pin down are
marked "unverified" where they are emulated.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from langchain_chatchat.testing.responder import (
    Responder,
    count_tokens,
    embed_text,
    message_text,
    new_tool_call_id,
    reply_token_counts,
    split_tokens,
)
from langchain_chatchat.testing.script import (
    Fault,
    RecordedRequest,
    Reply,
)
from langchain_chatchat.testing.server import EmulatorBase, TimedResponse

if TYPE_CHECKING:  # that module builds on this one
    from langchain_chatchat.testing.dashscope_multimodal import VisionModelSpec

__all__ = ["DEFAULT_MODELS", "ChatModelSpec", "DashScopeEmulator", "EmbeddingModelSpec"]

GENERATION_PATH = "/api/v1/services/aigc/text-generation/generation"
EMBEDDING_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"


@dataclass(frozen=True)
class ChatModelSpec:
    """What the emulator needs to know about a text-generation model.

    ``thinking``: "none" (no thinking mode), "off"/"on" (hybrid, ``enable_thinking`` defaults to
    false/true), "always" (thinking only).  ``result_format`` and ``incremental_output`` are the
    server-side defaults, which differ between model families.
    """

    max_input_tokens: int = 129_024
    max_output_tokens: int = 8_192
    thinking: Literal["none", "off", "on", "always"] = "off"
    result_format: Literal["text", "message"] = "text"
    incremental_output: bool = False
    stream_only: bool = False
    json_schema: bool = False
    """Whether `response_format` json_schema is documented for the model (help.aliyun.com/zh/
    model-studio/json-mode: qwen3-max, qwen-plus, qwen-flash and their snapshots; the rest take
    json_object only — unverified for models the page does not list)."""


@dataclass(frozen=True)
class EmbeddingModelSpec:
    """Allowed output dimensions (first is not special), the default one, the batch limit and
    the most tokens one text may hold."""

    dimensions: tuple[int, ...]
    default_dimension: int
    batch_size: int
    max_tokens: int = 8192


_Spec = TypeVar("_Spec", ChatModelSpec, EmbeddingModelSpec)

_QWEN3_OPEN = ChatModelSpec(
    thinking="on", result_format="message", incremental_output=True, stream_only=True
)
DEFAULT_MODELS: Mapping[str, ChatModelSpec | EmbeddingModelSpec] = {
    "qwen-turbo": ChatModelSpec(),
    "qwen-turbo-latest": ChatModelSpec(),
    "qwen-plus": ChatModelSpec(json_schema=True),
    "qwen-plus-latest": ChatModelSpec(json_schema=True),
    "qwen-flash": ChatModelSpec(json_schema=True),
    "qwen-max": ChatModelSpec(max_input_tokens=30_720, thinking="none"),
    "qwen-max-latest": ChatModelSpec(max_input_tokens=30_720, thinking="none"),
    "qwen3-max": ChatModelSpec(
        thinking="none", result_format="message", incremental_output=True, json_schema=True
    ),
    "qwen-long": ChatModelSpec(thinking="none", result_format="message"),
    "qwq-plus": ChatModelSpec(
        thinking="always", result_format="message", incremental_output=True, stream_only=True
    ),
    **{f"qwen3-{size}": _QWEN3_OPEN for size in ("8b", "14b", "32b", "30b-a3b", "235b-a22b")},
    # text-embedding-synchronous-api: v1/v2 2048 tokens per text, v3/v4 8192
    "text-embedding-v1": EmbeddingModelSpec((1536,), 1536, 25, 2048),
    "text-embedding-v2": EmbeddingModelSpec((1536,), 1536, 25, 2048),
    "text-embedding-v3": EmbeddingModelSpec((1024, 768, 512, 256, 128, 64), 1024, 10),
    "text-embedding-v4": EmbeddingModelSpec((2048, 1536, 1024, 768, 512, 256, 128, 64), 1024, 10),
}

_JSON = "application/json"
_SSE = "text/event-stream;charset=UTF-8"


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _invalid(message: str) -> _ApiError:
    return _ApiError(400, "InvalidParameter", message)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _failing_after(frames: list[bytes], fault: Fault, record: RecordedRequest) -> list[bytes]:
    """A stream error: the first of `frames` (never all of them), then the error event."""
    kept = frames[: min(fault.after_chunks, len(frames) - 1)]
    failure = {"code": fault.code, "message": fault.message, "request_id": record.request_id}
    return [*kept, _frame(len(kept) + 1, failure, status=fault.status)]


def _frame(event_id: int, payload: Mapping[str, Any], *, status: int = 200) -> bytes:
    """One SSE event as DashScope writes it (no space after the colons; the SDK relies on it)."""
    event = "result" if status == 200 else "error"
    return b"id:%d\nevent:%s\n:HTTP_STATUS/%d\ndata:%s\n\n" % (
        event_id,
        event.encode(),
        status,
        _dumps(payload),
    )


@dataclass(frozen=True)
class _Generation:
    """A validated generation request."""

    messages: list[dict[str, Any]]
    parameters: dict[str, Any]
    input_tokens: int
    message_format: bool
    incremental: bool
    thinking: bool


# Parameter ranges and the messages DashScope answers with (400 InvalidParameter).
_RANGES: tuple[tuple[str, Any, str], ...] = (
    ("temperature", lambda v: 0 <= v < 2, "Temperature should be in [0.0, 2.0)"),
    ("top_p", lambda v: 0 < v <= 1, "Range of top_p should be (0.0, 1.0]"),
    ("top_k", lambda v: v >= 0, "Parameter top_k be greater than or equal to 0"),
    ("repetition_penalty", lambda v: v > 0, "Repetition_penalty should be greater than 0.0"),
    ("presence_penalty", lambda v: -2 <= v <= 2, "Presence_penalty should be in [-2.0, 2.0]"),
    ("n", lambda v: 1 <= v <= 4, "Range of n should be [1, 4]"),
    ("seed", lambda v: 0 <= v <= 2**63 - 1, "Range of seed should be [0, 9223372036854775807]"),
)
# tool_choice (qwen-api-reference, "tool_choice"): "auto", "none", or {"type": "function",
# "function": {"name": ...}} naming a bound tool; any other string is answered with the message
# below (quoted in the provider-conformance issue from the live API).
_TOOL_CHOICES = ("auto", "none")


class DashScopeEmulator(EmulatorBase):
    """The DashScope native API on 127.0.0.1, scriptable, for offline tests.

    ``models`` adds to (or overrides) `DEFAULT_MODELS`; unknown models get DashScope's
    "Model not exist." error.  ``max_input_tokens`` overrides every chat model's input limit.
    Requests take the next scripted item (`enqueue`); with an empty script ``responder`` answers.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        models: Mapping[str, ChatModelSpec | EmbeddingModelSpec] | None = None,
        max_input_tokens: int | None = None,
        responder: Responder | None = None,
    ) -> None:
        self.api_key = api_key
        self.models: dict[str, ChatModelSpec | EmbeddingModelSpec | VisionModelSpec] = {
            **DEFAULT_MODELS,
            **(models or {}),
        }
        self.max_input_tokens = max_input_tokens
        self.responder = responder or Responder()
        super().__init__()
        methods = ["POST", "GET"]
        # The vision models' endpoint lives in its own module, which builds on this one.
        from langchain_chatchat.testing import dashscope_multimodal as multimodal

        self.models = {**multimodal.VISION_MODELS, **self.models}
        self.remote_images: dict[str, bytes] = {}
        """Bytes to serve for image URLs instead of downloading them (for URLs off loopback)."""
        self._serve(
            Starlette(
                routes=[
                    Route(GENERATION_PATH, self._generation, methods=methods),
                    Route(EMBEDDING_PATH, self._embedding, methods=methods),
                    Route(
                        multimodal.MULTIMODAL_PATH,
                        partial(multimodal.multimodal_generation, self),
                        methods=["POST"],
                    ),
                ]
            )
        )

    @property
    def base_url(self) -> str:
        """The SDK's base address, ``http://127.0.0.1:PORT/api/v1``."""
        return f"{self.url}/api/v1"

    # -- shared request handling -------------------------------------------------------------

    def _check_request(self, request: Request, record: RecordedRequest) -> dict[str, Any]:
        """Method, API key and JSON body checks common to every endpoint; returns the body."""
        if request.method != "POST":
            raise _invalid(f"Request method '{request.method}' is not supported.")
        expected = f"Bearer {self.api_key}".encode()
        if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected):
            raise _ApiError(401, "InvalidApiKey", "Invalid API-key provided.")
        if record.body is None:
            raise _invalid("Required body invalid, please check the request body format.")
        return record.body

    def _spec(self, body: Mapping[str, Any], kind: type[_Spec]) -> _Spec:
        model = body.get("model")
        if not model:
            raise _ApiError(
                400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.'
            )
        spec = self.models.get(model)
        if spec is None:
            raise _invalid("Model not exist.")
        if not isinstance(spec, kind):
            raise _invalid("url error, please check url!")
        if not isinstance(body.get("input"), dict):
            raise _ApiError(
                400, "BadRequest.EmptyInput", "Required input parameter missing from request."
            )
        return spec

    @staticmethod
    def _error(error: _ApiError, record: RecordedRequest, *, stream: bool) -> TimedResponse:
        """DashScope's error body: JSON, or a single ``event:error`` frame for SSE requests."""
        payload = {"code": error.code, "message": error.message, "request_id": record.request_id}
        body = _frame(1, payload, status=error.status) if stream else _dumps(payload)
        return TimedResponse(
            error.status,
            [("content-type", _SSE if stream else _JSON), ("content-length", str(len(body)))],
            [(0.0, body)],
            on_disconnect=record.mark_disconnected,
        )

    @staticmethod
    def _json(
        output: Mapping[str, Any],
        usage: Mapping[str, Any],
        record: RecordedRequest,
        *,
        hang: float,
        reply: Reply | None,
    ) -> TimedResponse:
        """A successful non-streaming answer; a scripted reply may delay it or cut it short."""
        body = _dumps({"output": output, "usage": usage, "request_id": record.request_id})
        delay = reply.first_chunk_delay if reply else 0.0
        pieces = [(delay, body)]
        abort_after = None
        if reply is not None and reply.drop_after_chunks is not None:
            pieces, abort_after = (
                [(delay, body[: len(body) // 2]), (0.0, body[len(body) // 2 :])],
                1,
            )
        return TimedResponse(
            200,
            [("content-type", _JSON), ("content-length", str(len(body)))],
            pieces,
            hang=hang,
            abort_after=abort_after,
            on_disconnect=record.mark_disconnected,
        )

    # -- text generation ---------------------------------------------------------------------

    async def _generation(self, request: Request) -> TimedResponse:
        record = await self._record(request, str(uuid.uuid4()))
        stream = request.headers.get("x-dashscope-sse", "").lower() == "enable" or (
            "text/event-stream" in request.headers.get("accept", "")
        )
        try:
            body = self._check_request(request, record)
            spec = self._spec(body, ChatModelSpec)
            call = self._validate_generation(body, spec, stream=stream)
        except _ApiError as error:
            return self._error(error, record, stream=stream)

        item, hang = self._take()
        if isinstance(item, Fault) and (item.kind == "http" or not stream):
            return self._error(
                _ApiError(item.status, item.code, item.message), record, stream=stream
            )
        reply = item if isinstance(item, Reply) else self._default_reply(call)
        usage = _usage(reply, call.input_tokens)
        search = _search_info(call)
        if not stream:
            scripted = item if isinstance(item, Reply) else None
            output = {**_output(reply, call.message_format), **search}
            return self._json(output, usage, record, hang=hang, reply=scripted)

        cumulative = not call.incremental if reply.cumulative is None else reply.cumulative
        frames = [
            _frame(
                i,
                {
                    "output": {**output, **(search if i == 1 else {})},
                    "usage": chunk_usage,
                    "request_id": record.request_id,
                },
            )
            for i, (output, chunk_usage) in enumerate(
                _stream_outputs(reply, usage, call.input_tokens, call.message_format, cumulative),
                start=1,
            )
        ]
        if isinstance(item, Fault):
            frames = _failing_after(frames, item, record)
        return TimedResponse.stream(
            [("content-type", _SSE), ("cache-control", "no-cache")],
            frames,
            reply,
            record,
            hang=hang,
        )

    def _default_reply(self, call: _Generation) -> Reply:
        params = call.parameters
        return self.responder.reply(
            call.messages,
            tools=params.get("tools"),
            tool_choice=params.get("tool_choice"),
            response_format=params.get("response_format"),
            stop=params.get("stop"),
            max_tokens=params.get("max_tokens"),
            enable_thinking=call.thinking,
            parallel_tool_calls=bool(params.get("parallel_tool_calls")),
        )

    def _validate_generation(
        self, body: dict[str, Any], spec: ChatModelSpec, *, stream: bool, media_tokens: int = 0
    ) -> _Generation:
        """Reject what DashScope documents as invalid, with its documented messages.
        `media_tokens`: the input tokens of images and video (multimodal endpoint)."""
        model = body["model"]
        messages = _messages(body["input"])
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise _invalid("Required body invalid, please check the request body format.")

        _check_ranges(params, spec.max_output_tokens)
        tools = params.get("tools") or []
        if any(t.get("function", {}).get("name") == "search" for t in tools if isinstance(t, dict)):
            raise _invalid("Tool names are not allowed to be [search]")
        thinking = _thinking(spec, model, params.get("enable_thinking"))
        # Tools only work with the message format; the emulator uses it whenever tools are sent.
        message_format = bool(tools) or params.get("result_format", spec.result_format) == "message"
        incremental = bool(params.get("incremental_output", spec.incremental_output))
        response_type = _response_format_type(params.get("response_format"))
        tool_choice = params.get("tool_choice")

        if spec.stream_only and not stream:
            raise _invalid(
                "This model only support stream mode, "
                "please enable the stream parameter to access the model."
            )
        if thinking:
            if not stream:
                raise _invalid(
                    "parameter.enable_thinking must be set to false for non-streaming calls"
                )
            if not message_format:
                raise _invalid(
                    'The result_format parameter must be "message" when enable_thinking is true'
                )
            if not incremental:
                raise _invalid(
                    'The incremental_output parameter must be "true" when enable_thinking is true'
                )
            if response_type in ("json_object", "json_schema"):
                raise _invalid("Json mode response is not supported when enable_thinking is true")
        _check_tool_choice(tool_choice, tools, thinking)
        if response_type == "json_schema" and not spec.json_schema:  # unverified message
            raise _invalid(f"The response_format type json_schema is not supported by {model}.")
        if (
            response_type == "json_object"
            and "json" not in " ".join(map(message_text, messages)).lower()
        ):
            raise _invalid(
                "'messages' must contain the word 'json' in some form, "
                "to use 'response_format' of type 'json_object'."
            )

        input_tokens = media_tokens + sum(
            count_tokens(message_text(m)) + _tool_call_tokens(m) for m in messages
        )
        if tools:
            input_tokens += count_tokens(json.dumps(tools, ensure_ascii=False))
        limit = self.max_input_tokens or spec.max_input_tokens
        if not 1 <= input_tokens <= limit:
            raise _invalid(f"Range of input length should be [1, {limit}]")
        return _Generation(messages, params, input_tokens, message_format, incremental, thinking)

    # -- embeddings --------------------------------------------------------------------------

    async def _embedding(self, request: Request) -> TimedResponse:
        record = await self._record(request, str(uuid.uuid4()))
        try:
            body = self._check_request(request, record)
            spec = self._spec(body, EmbeddingModelSpec)
            texts, dimension = _embedding_request(body, spec)
        except _ApiError as error:
            return self._error(error, record, stream=False)

        item, hang = self._take()
        if isinstance(item, Fault):
            return self._error(
                _ApiError(item.status, item.code, item.message), record, stream=False
            )
        output = {
            "embeddings": [
                {"text_index": i, "embedding": embed_text(t, dimension)}
                for i, t in enumerate(texts)
            ]
        }
        usage = {"total_tokens": sum(count_tokens(t) for t in texts)}
        return self._json(output, usage, record, hang=hang, reply=item)


# -- request parsing and validation helpers ----------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _messages(input_: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conversation, from ``messages`` or the legacy ``prompt``/``history`` input."""
    messages = input_.get("messages")
    if messages is None:
        prompt = input_.get("prompt")
        if not prompt:
            raise _invalid('Either "prompt" or "messages" must exist and cannot both be none')
        messages = []
        for turn in input_.get("history") or []:
            messages += [{"role": "user", "content": turn.get("user", "")}]
            messages += [{"role": "assistant", "content": turn.get("bot", "")}]
        messages.append({"role": "user", "content": prompt})
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _invalid("Input should be a valid dictionary or instance of GPT3Message")
    if not messages:
        raise _invalid("[] is too short")
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        calls_tools = role == "assistant" and bool(message.get("tool_calls"))
        if "content" not in message and not calls_tools:
            raise _invalid("The content field is a required field.")
        if not isinstance(content, str) and not (calls_tools and content is None):
            raise _invalid("input content must be a string.")
        if role == "system" and index > 0:  # documented rule; the message text is unverified
            raise _invalid("Role 'system' is only supported in messages[0].")
        if role == "tool" and not _follows_tool_calls(messages, index):
            raise _invalid(
                'messages with role "tool" must be a response to a preceeding message '
                'with "tool_calls"'
            )
    if not any(m.get("role") == "user" for m in messages):
        raise _invalid("The input messages do not contain elements with the role of user.")
    return messages


def _follows_tool_calls(messages: Sequence[Mapping[str, Any]], index: int) -> bool:
    for previous in reversed(messages[:index]):
        if previous.get("role") != "tool":
            return previous.get("role") == "assistant" and bool(previous.get("tool_calls"))
    return False


def _tool_call_tokens(message: Mapping[str, Any]) -> int:
    calls = message.get("tool_calls") or []
    return sum(
        count_tokens(json.dumps(c, ensure_ascii=False)) for c in calls if isinstance(c, dict)
    )


def _check_ranges(params: Mapping[str, Any], max_output_tokens: int) -> None:
    for name, ok, message in _RANGES:
        value = params.get(name)
        if value is None:
            continue
        if not _is_number(value):
            raise _invalid(
                f"'{name}' must be Float" if name in ("temperature", "top_p") else message
            )
        if not ok(value):
            raise _invalid(message)
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and not (
        isinstance(max_tokens, int) and 1 <= max_tokens <= max_output_tokens
    ):
        raise _invalid(f"Range of max_tokens should be [1, {max_output_tokens}]")
    _check_stop(params.get("stop"))


def _thinking(spec: ChatModelSpec, model: str, enable: Any) -> bool:
    """Whether the request runs in thinking mode, rejecting what the model cannot do."""
    if spec.thinking == "none" and enable:
        raise _ApiError(
            400,
            "InvalidParameter.NotSupportEnableThinking",
            f"The model {model} does not support enable_thinking.",
        )
    if spec.thinking == "always" and enable is False:
        raise _invalid("The value of the enable_thinking parameter is restricted to True.")
    return spec.thinking == "always" or bool(enable) or (spec.thinking == "on" and enable is None)


def _check_tool_choice(tool_choice: Any, tools: Sequence[Any], thinking: bool) -> None:
    if tool_choice is None:
        return
    if isinstance(tool_choice, str):
        if tool_choice not in _TOOL_CHOICES:
            raise _invalid('tool_choice is one of the strings that should be ["none", "auto"]')
        return
    names = {(t.get("function") or {}).get("name") for t in tools if isinstance(t, dict)}
    function = tool_choice.get("function") if isinstance(tool_choice, dict) else None
    if (
        not isinstance(function, dict)
        or tool_choice.get("type") != "function"
        or function.get("name") not in names
    ):  # unverified message
        raise _invalid(
            'tool_choice should be "auto", "none" or {"type": "function", "function": '
            '{"name": <the name of a tool in tools>}}'
        )
    if thinking:
        # deep-thinking guide: forcing a tool is not supported in thinking mode (unverified
        # message).
        raise _invalid(
            "tool_choice does not support specifying a function when enable_thinking is true"
        )


def _check_stop(stop: Any) -> None:
    kinds = {type(s) for s in stop} if isinstance(stop, list) else set()
    valid = (
        stop is None
        or isinstance(stop, str)
        or (isinstance(stop, list) and len(kinds) <= 1 and kinds <= {str, int, list})
    )
    if not valid:
        raise _invalid(
            'The "stop" parameter must be of type "str", "list[str]", "list[int]", '
            'or "list[list[int]]", and all elements within the list must be of the same type.'
        )


def _response_format_type(response_format: Any) -> str | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else response_format
    if kind not in ("text", "json_object", "json_schema"):
        raise _invalid(
            "Unknown format of response_format, response_format should be a dict, includes "
            "'type' and an optional key 'json_schema'. "
            f"The response_format type from user is {kind}."
        )
    return kind


def _embedding_request(body: Mapping[str, Any], spec: EmbeddingModelSpec) -> tuple[list[str], int]:
    texts = body["input"].get("texts")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise _invalid("Value error, contents is neither str nor list of str.: input.contents")
    if len(texts) > spec.batch_size:
        raise _invalid(
            f"Value error, batch size is invalid, it should not be larger than {spec.batch_size}."
        )
    for text in texts:
        if count_tokens(text) > spec.max_tokens:  # unverified message
            raise _invalid(f"Range of input length should be [1, {spec.max_tokens}]")
    params = body.get("parameters") or {}
    dimension = params.get("dimension", spec.default_dimension)
    if dimension not in spec.dimensions:  # unverified message
        raise _invalid(f"Value error, dimension should be one of {list(spec.dimensions)}.")
    return texts, dimension


# -- response rendering ------------------------------------------------------------------------


def _search_info(call: _Generation) -> dict[str, Any]:
    """`output.search_info` for `enable_search` with `search_options.enable_source` (qwen-api-
    reference, search_info.search_results: index, title, url, site_name, icon); the emulator
    cites one made-up page about the user's question, on the first stream chunk (unverified)."""
    params = call.parameters
    options = params.get("search_options") or {}
    if not (params.get("enable_search") and options.get("enable_source")):
        return {}
    question = next(
        (message_text(m) for m in reversed(call.messages) if m.get("role") == "user"), ""
    )
    result = {
        "index": 1,
        "title": f"About: {question.strip()[:60]}",
        "url": "https://example.com/search/1",
        "site_name": "Example",
        "icon": "https://example.com/favicon.ico",
    }
    return {"search_info": {"search_results": [result]}}


def _usage(reply: Reply, input_tokens: int) -> dict[str, Any]:
    """Final usage: the reply's override, else counted with the emulator's tokenizer."""
    override = reply.usage or {}
    prompt, output, reasoning = reply_token_counts(reply, input_tokens)
    usage: dict[str, Any] = {
        "input_tokens": prompt,
        "output_tokens": output,
        "total_tokens": prompt + output,
    }
    if reply.reasoning:
        usage["output_tokens_details"] = {"reasoning_tokens": reasoning}
    if "cached_tokens" in override:  # context cache hits, top level (unverified placement)
        usage["cached_tokens"] = override["cached_tokens"]
    return usage


def _wire_calls(reply: Reply) -> list[tuple[str, str, str]]:
    """(id, name, arguments) for each tool call, with ids filled in."""
    return [(c.id or new_tool_call_id(), c.name, c.arguments_json()) for c in reply.tool_calls]


def _output(reply: Reply, message_format: bool) -> dict[str, Any]:
    """The non-streaming ``output`` object."""
    finish_reason = reply.resolved_finish_reason
    if not message_format:
        return {"text": reply.text, "finish_reason": finish_reason}
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "index": i,
                "id": cid,
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            for i, (cid, name, args) in enumerate(_wire_calls(reply))
        ]
    return {"choices": [{"finish_reason": finish_reason, "message": message}]}


def _stream_outputs(
    reply: Reply,
    final_usage: dict[str, Any],
    input_tokens: int,
    message_format: bool,
    cumulative: bool,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(output, usage)`` per SSE chunk: one token per chunk, then one with the finish reason."""
    stream = _StreamBuilder(reply, input_tokens, message_format, cumulative)
    chunks = [stream.chunk(kind, index, piece) for kind, index, piece in stream.pieces()]
    chunks.append((stream.final_output(), final_usage))
    return chunks


class _StreamBuilder:
    """Renders a reply as DashScope stream chunks.

    Incremental chunks carry only the new piece; cumulative chunks repeat everything so far.
    Tool calls stream their id and name first, then argument fragments (later fragments have an
    empty id and no name); the final chunk carries a stub of the last call, as DashScope does.
    """

    def __init__(
        self, reply: Reply, input_tokens: int, message_format: bool, cumulative: bool
    ) -> None:
        self.reply = reply
        self.input_tokens = input_tokens
        self.message_format = message_format
        self.cumulative = cumulative
        self.calls = _wire_calls(reply) if message_format else []
        self.text = {"reasoning": "", "content": ""}
        self.arguments: dict[int, str] = {}
        self.output_tokens = self.reasoning_tokens = 0

    def pieces(self) -> list[tuple[str, int, str]]:
        pieces = [("content", 0, t) for t in split_tokens(self.reply.text)]
        if not self.message_format:
            return pieces
        pieces[:0] = [("reasoning", 0, t) for t in split_tokens(self.reply.reasoning)]
        for index, (_, _, args) in enumerate(self.calls):
            pieces += [("tool", index, fragment) for fragment in split_tokens(args) or [""]]
        return pieces

    def chunk(self, kind: str, index: int, piece: str) -> tuple[dict[str, Any], dict[str, Any]]:
        tokens = count_tokens(piece)
        first_of_call = kind == "tool" and index not in self.arguments
        if kind == "tool":
            tokens += count_tokens(self.calls[index][1]) if first_of_call else 0
            self.arguments[index] = self.arguments.get(index, "") + piece
        else:
            self.text[kind] += piece
        self.output_tokens += tokens
        self.reasoning_tokens += tokens if kind == "reasoning" else 0

        message = self._message(kind, piece)
        if kind == "tool" and not self.cumulative:
            cid, name = self.calls[index][0], self.calls[index][1]
            function = {"name": name, "arguments": piece} if first_of_call else {"arguments": piece}
            message["tool_calls"] = [
                {
                    "index": index,
                    "id": cid if first_of_call else "",
                    "type": "function",
                    "function": function,
                }
            ]
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        if self.reply.reasoning:
            usage["output_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return self._wrap(message, "null"), usage

    def final_output(self) -> dict[str, Any]:
        message = self._message(None, "")
        if self.calls and not self.cumulative:
            message["tool_calls"] = [
                {"index": len(self.calls) - 1, "id": "", "type": "function", "function": {}}
            ]
        return self._wrap(message, self.reply.resolved_finish_reason)

    def _message(self, kind: str | None, piece: str) -> dict[str, Any]:
        def part(name: str) -> str:
            return self.text[name] if self.cumulative else (piece if kind == name else "")

        if not self.message_format:
            return {"text": part("content")}
        message: dict[str, Any] = {"content": part("content"), "role": "assistant"}
        if self.reply.reasoning:
            message["reasoning_content"] = part("reasoning")
        if self.cumulative and self.arguments:
            message["tool_calls"] = [
                {
                    "index": i,
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": args},
                }
                for i, ((cid, name, _), args) in enumerate(
                    zip(self.calls, self.arguments.values(), strict=False)
                )
            ]
        return message

    def _wrap(self, message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
        if not self.message_format:
            return {**message, "finish_reason": finish_reason}
        return {"choices": [{"message": message, "finish_reason": finish_reason}]}
