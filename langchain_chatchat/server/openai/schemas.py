"""Request bodies of the OpenAI-compatible API.

Nested parts (messages, tools, response formats) are `TypedDict`s: pydantic validates them in
its Rust core and hands back plain dicts, so a request is checked once and never converted
from model objects back to dicts on the hot path. Unknown top-level fields of a chat or
completions body are passed to the model as call options (e.g. Qwen's `enable_thinking` via the
SDK's `extra_body`); the model refuses, with a 400, every name its class does not declare in
`call_options`, so a body can never reach an operator setting (key, URL, headers, timeout).
Names that `Runnable.ainvoke` itself interprets are refused here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import NotRequired, TypedDict

from langchain_chatchat.workers.errors import BadRequestError


class TextPart(TypedDict):
    type: Literal["text"]
    text: str


class ImageURL(TypedDict):
    url: Annotated[str, Field(min_length=1)]
    detail: NotRequired[Literal["auto", "low", "high"]]


class ImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(TypedDict):
    data: Annotated[str, Field(min_length=1)]
    format: Literal["wav", "mp3"]


class AudioPart(TypedDict):
    type: Literal["input_audio"]
    input_audio: InputAudio


class VideoURL(TypedDict):
    url: Annotated[str, Field(min_length=1)]


class VideoURLPart(TypedDict):
    """Zhipu's / Kimi's / DashScope compatible mode's video part."""

    type: Literal["video_url"]
    video_url: VideoURL


class VideoPart(TypedDict):
    """DashScope compatible mode's video as a list of frame image URLs (or one video URL)."""

    type: Literal["video"]
    video: str | list[str]


ContentPart = Annotated[
    TextPart | ImagePart | AudioPart | VideoURLPart | VideoPart, Field(discriminator="type")
]
# The list first, so that a malformed part (not "content is not a string") is what a 400 names.
Content = list[ContentPart] | str
"""User and tool content: text and media parts (which models take media: each provider's rules)."""
TextContent = list[TextPart] | str

# Keyword names that `Runnable.ainvoke/astream` itself interprets; a body naming one is a 400.
_RESERVED_KWARGS = frozenset(
    {"input", "config", "run_manager", "callbacks", "tags", "run_name", "run_id"}
)


def unrecognized(names: list[str]) -> BadRequestError:
    """OpenAI's answer to request fields it does not know."""
    plural = "s" if len(names) > 1 else ""
    return BadRequestError(
        f"Unrecognized request argument{plural} supplied: {', '.join(names)}", param=names[0]
    )


class SystemMessageParam(TypedDict):
    role: Literal["system", "developer"]
    content: TextContent
    name: NotRequired[str]


class UserMessageParam(TypedDict):
    role: Literal["user"]
    content: Content
    name: NotRequired[str]


class FunctionCallParam(TypedDict):
    name: str
    arguments: str


class ToolCallParam(TypedDict):
    id: str
    type: NotRequired[Literal["function"]]
    function: FunctionCallParam


class AssistantMessageParam(TypedDict):
    role: Literal["assistant"]
    content: NotRequired[TextContent | None]
    name: NotRequired[str]
    tool_calls: NotRequired[list[ToolCallParam] | None]
    reasoning_content: NotRequired[str | None]


class ToolMessageParam(TypedDict):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


MessageParam = Annotated[
    SystemMessageParam | UserMessageParam | AssistantMessageParam | ToolMessageParam,
    Field(discriminator="role"),
]


class FunctionDefinition(TypedDict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]
    strict: NotRequired[bool | None]


class ToolParam(TypedDict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(TypedDict):
    name: str


class NamedToolChoice(TypedDict):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(TypedDict):
    name: str
    description: NotRequired[str]
    schema: NotRequired[dict[str, Any]]
    strict: NotRequired[bool | None]


class TextFormat(TypedDict):
    type: Literal["text"]


class JsonObjectFormat(TypedDict):
    type: Literal["json_object"]


class JsonSchemaFormat(TypedDict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


class StreamOptions(TypedDict):
    include_usage: NotRequired[bool | None]


class GenerationRequest(BaseModel):
    """Fields shared by chat and legacy completions."""

    model_config = ConfigDict(extra="allow")

    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    n: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)

    def invoke_kwargs(self) -> dict[str, Any]:
        """The set sampling parameters, as keyword arguments for `ainvoke`/`astream`."""
        if self.n is not None and self.n > 1:
            raise BadRequestError(
                "n > 1 is not supported; send n separate requests instead",
                param="n",
                code="unsupported_parameter",
            )
        kwargs = {
            name: value for name in _SAMPLING_FIELDS if (value := getattr(self, name)) is not None
        }
        if self.model_extra:
            if reserved := sorted(_RESERVED_KWARGS.intersection(self.model_extra)):
                raise unrecognized(reserved)
            kwargs.update(self.model_extra)
        return kwargs

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


_SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "user",
    "presence_penalty",
    "frequency_penalty",
)


class ChatCompletionRequest(GenerationRequest):
    messages: list[MessageParam] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[ToolParam] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    # Accepted for compatibility and ignored: they concern OpenAI's own storage and billing.
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None

    def invoke_kwargs(self) -> dict[str, Any]:
        if self.logprobs:
            raise BadRequestError(
                "logprobs are not supported", param="logprobs", code="unsupported_parameter"
            )
        kwargs = super().invoke_kwargs()
        if self.max_completion_tokens is not None:
            kwargs["max_tokens"] = self.max_completion_tokens
        if self.response_format is not None and self.response_format["type"] != "text":
            kwargs["response_format"] = self.response_format
        return kwargs


class CompletionRequest(GenerationRequest):
    prompt: str | list[str] = Field(min_length=1)
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1)
    logprobs: int | None = None

    def invoke_kwargs(self) -> dict[str, Any]:
        for name, unsupported in (
            ("echo", self.echo),
            ("suffix", self.suffix),
            ("best_of", self.best_of is not None and self.best_of > 1),
            ("logprobs", self.logprobs is not None),
        ):
            if unsupported:
                raise BadRequestError(
                    f"{name} is not supported", param=name, code="unsupported_parameter"
                )
        return super().invoke_kwargs()


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # embeddings take no call options

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def texts(self) -> list[str]:
        """The input as strings; token arrays are refused (each model has its own tokenizer)."""
        if isinstance(self.input, str):
            return [self.input]
        if not self.input:
            raise BadRequestError("'input' must not be empty", param="input")
        if not isinstance(self.input[0], str):
            raise BadRequestError(
                "token-array input is not supported; send the text",
                param="input",
                code="unsupported_parameter",
            )
        return self.input
