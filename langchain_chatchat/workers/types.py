"""Provider-neutral request, delta and result objects.

Plain dataclasses on purpose: they cross the hot path once per request/chunk, need no
validation of their own (the chat model and the server validate at the edges), and must be
cheap to build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class WorkerToolCall:
    """A complete tool call requested by the model; `arguments` is the raw JSON string."""

    id: str
    name: str
    arguments: str


@dataclass
class WorkerMessage:
    """One conversation turn in OpenAI-like shape.

    `content` is a string or a list of OpenAI-style parts ({"type": "text", ...},
    {"type": "image_url", ...}); each worker decides what its provider accepts.
    """

    role: Role
    content: str | list[dict[str, Any]] = ""
    name: str | None = None
    tool_calls: list[WorkerToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    def text(self) -> str:
        """The message's text parts joined, for providers that only take strings."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")


ToolChoice = Literal["auto", "none", "required"] | str  # a tool name forces that tool


@dataclass
class ChatRequest:
    """Everything a worker needs to make one chat call.

    `tools` are OpenAI function-tool dicts ({"type": "function", "function": {...}});
    `response_format` is OpenAI's ({"type": "json_object"} / {"type": "json_schema", ...});
    `extra` holds provider-specific parameters (e.g. Qwen's enable_search) passed through.
    """

    model: str
    messages: list[WorkerMessage]
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Usage:
    """Token counts of one call. `input_tokens` includes every modality; `image_tokens`,
    `audio_tokens` and `video_tokens` are the parts of it the provider reports per modality
    (None when it reports none)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    image_tokens: int | None = None
    audio_tokens: int | None = None
    video_tokens: int | None = None


MEDIA_TOKEN_KEYS = ("image_tokens", "audio_tokens", "video_tokens")


def media_tokens(*sources: Any) -> dict[str, int]:
    """The non-zero `image_tokens` / `audio_tokens` / `video_tokens` of provider usage objects,
    as `Usage` keyword arguments; the first source that names a modality wins."""
    found: dict[str, int] = {}
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key in MEDIA_TOKEN_KEYS:
            value = source.get(key)
            if key not in found and type(value) is int and value > 0:
                found[key] = value
    return found


@dataclass
class ToolCallDelta:
    """A piece of a streamed tool call; pieces with the same `index` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass
class ChatDelta:
    """One incremental step of a reply. Non-streaming calls produce a single delta."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    request_id: str | None = None
    model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """Provider facts for `response_metadata` (the raw finish reason when it was mapped, web
    search results, ...); carried by the final delta."""


@dataclass
class WorkerResult:
    """A whole reply, the sum of its deltas."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[WorkerToolCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    request_id: str | None = None
    model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbeddingRequest:
    model: str
    texts: list[str]
    dimensions: int | None = None
    text_type: Literal["query", "document"] = "document"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbeddingResult:
    vectors: list[list[float]]
    usage: Usage | None = None
    request_id: str | None = None
    model: str | None = None
