"""The deterministic default "model" behind the emulators (provider-neutral).

It answers OpenAI-shaped messages (``{"role", "content", ...}``) and OpenAI function tools with
a `Reply`, so that any client can be exercised end to end without scripting every turn:

* a forced tool (``tool_choice`` names a function, or is "required"/"any") is always called,
  and so is a tool when a system message says the answer must call one (a model that follows
  its instructions);
  with ``tool_choice`` "auto" a tool is called when the last message is the user's and it
  mentions the tool's name or a salient word of it ("weather" for ``get_weather``), or gives
  enough numbers for a tool that only takes numbers ("what is 2+3?" for ``add(a, b)``);
  arguments are synthesized from the tool's JSON schema and the user's text;
* after a tool result it reports that result ("The result is 5.");
* ``response_format`` json_object / json_schema gives JSON text (valid for the schema);
* otherwise it echoes the user politely; ``enable_thinking`` adds reasoning text;
* stop sequences and ``max_tokens`` cut the text (finish reasons "stop" / "length").

`split_tokens` / `count_tokens` are the emulators' tokenizer: words, punctuation marks and
single CJK characters.  Streams are sent one token per chunk.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from langchain_chatchat.testing.script import Reply, ToolCallReply

__all__ = [
    "Responder",
    "apply_limits",
    "count_tokens",
    "embed_text",
    "message_text",
    "split_tokens",
]

Message = Mapping[str, Any]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"\s*(?:[{_CJK}]|[^\W{_CJK}]+|[^\w\s])")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
# Quoted phrases: 'x' (not an apostrophe), "x", curly quotes, CJK corner brackets.
_QUOTED = re.compile(
    r"(?<!\w)'([^']+)'(?!\w)|\"([^\"]+)\"|\u201c([^\u201d]+)\u201d|\u2018([^\u2019]+)\u2019|「([^」]+)」"
)
_PLACE = re.compile(r"\b(?:in|at|for|about|near|named|called|titled)\s+([^?.!;\n]+)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[a-z][a-z0-9]*|[A-Z][a-z0-9]*|[A-Z]+(?![a-z])|\d+")
# Words too generic to signal that the user wants a particular tool.
_GENERIC = frozenset(
    {"get", "set", "fetch", "make", "create", "run", "call", "use", "find", "list", "search"}
    | {"tool", "tools", "function", "func", "the", "and", "for", "with", "from", "info", "data"}
    | {"value", "values", "result", "results", "query"}
)
_MAX_DEPTH = 4
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into tokens that concatenate back to it (whitespace rides along)."""
    tokens = _TOKEN.findall(text)
    rest = text[sum(map(len, tokens)) :]
    if rest:  # trailing whitespace
        if tokens:
            tokens[-1] += rest
        else:
            tokens.append(rest)
    return tokens


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` (words, punctuation marks, CJK characters)."""
    return len(_TOKEN.findall(text))


def tool_call_tokens(calls: Iterable[ToolCallReply]) -> int:
    """Tokens of tool calls' names and JSON arguments."""
    return sum(count_tokens(c.name) + count_tokens(c.arguments_json()) for c in calls)


def reply_token_counts(reply: Reply, input_tokens: int) -> tuple[int, int, int]:
    """(input, output, reasoning) tokens of a whole reply: its ``usage`` override where set,
    else counted; output includes the reasoning and the tool calls."""
    override = reply.usage or {}
    reasoning = override.get("reasoning_tokens", count_tokens(reply.reasoning))
    output = override.get(
        "output_tokens",
        count_tokens(reply.text)
        + count_tokens(reply.reasoning)
        + tool_call_tokens(reply.tool_calls),
    )
    return override.get("input_tokens", input_tokens), output, reasoning


def message_text(message: Message) -> str:
    """Text of a message whose content is a string or a list of parts with ``"text"``."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def apply_limits(
    text: str, stop: str | Sequence[Any] | None, max_tokens: int | None
) -> tuple[str, str]:
    """Cut ``text`` at the first stop sequence, then to ``max_tokens``; give the finish reason."""
    stops = [stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str) and s]
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    if cuts:
        text = text[: min(cuts)]
    tokens = split_tokens(text)
    if max_tokens is not None and len(tokens) > max_tokens:
        return "".join(tokens[:max_tokens]), "length"
    return text, "stop"


def new_tool_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:22]}"


class Responder:
    """Deterministic stand-in for a chat model; see the module docstring for its rules."""

    def reply(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Mapping[str, Any] | None = None,
        stop: str | Sequence[Any] | None = None,
        max_tokens: int | None = None,
        enable_thinking: bool = False,
        parallel_tool_calls: bool = False,
    ) -> Reply:
        user_text = next(
            (message_text(m) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        calls = _tool_calls(messages, user_text, tools or (), tool_choice, parallel_tool_calls)
        if calls:
            reasoning = f"The user needs {calls[0].name}, so I will call that tool."
            return Reply(tool_calls=tuple(calls), reasoning=reasoning if enable_thinking else "")

        results = _trailing_tool_results(messages)
        if results:
            text = "The result is " + "; ".join(r.strip().rstrip(".") for r in results) + "."
            reasoning = "The tool has answered, so I will report its result."
        else:
            answer = _json_answer(messages, user_text, response_format)
            if answer is not None:
                text = answer
            else:
                text = (
                    f"Hello! You said: {user_text}"
                    if user_text.strip()
                    else "Hello! How can I help you today?"
                )
            reasoning = f"The user said: {user_text.strip() or 'nothing'}. I will answer."
        text, finish_reason = apply_limits(text, stop, max_tokens)
        return Reply(
            text=text, reasoning=reasoning if enable_thinking else "", finish_reason=finish_reason
        )


def _tool_calls(
    messages: Sequence[Message],
    user_text: str,
    tools: Sequence[Mapping[str, Any]],
    tool_choice: str | Mapping[str, Any] | None,
    parallel: bool,
) -> list[ToolCallReply]:
    functions = {f["name"]: f for f in (t.get("function", t) for t in tools) if "name" in f}
    if not functions or tool_choice == "none":
        return []
    if isinstance(tool_choice, Mapping):
        forced = tool_choice.get("function", {}).get("name")
        chosen = [forced] if isinstance(forced, str) else []
    elif isinstance(tool_choice, str) and tool_choice in functions:
        chosen = [tool_choice]
    elif tool_choice in ("required", "any") or _instructed_to_call(messages):
        chosen = (_mentioned(functions, user_text) or list(functions))[:1]
    elif messages and messages[-1].get("role") == "user":
        mentioned = _mentioned(functions, user_text)
        chosen = mentioned if parallel else mentioned[:1]
    else:
        chosen = []
    return [
        ToolCallReply(
            name,
            _arguments(functions.get(name, {}).get("parameters"), user_text),
            new_tool_call_id(),
        )
        for name in chosen
    ]


def _instructed_to_call(messages: Sequence[Message]) -> bool:
    """A system message that says the model must call a tool."""
    return any(
        m.get("role") == "system"
        and re.search(r"\bmust\b.*\bcall", message_text(m), re.IGNORECASE | re.DOTALL)
        and "tool" in message_text(m).lower()
        for m in messages
    )


def _trailing_tool_results(messages: Sequence[Message]) -> list[str]:
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, message_text(message))
    return results


def _mentioned(functions: Mapping[str, Mapping[str, Any]], text: str) -> list[str]:
    """Tools the user's text asks for (see the module docstring)."""
    lowered = text.lower()
    words = set(re.findall(r"[a-z0-9]+", lowered))
    numbers = len(_NUMBER.findall(text))
    found = []
    for name, function in functions.items():
        salient = {w.lower() for w in _WORD.findall(name)} - _GENERIC
        salient = {w for w in salient if len(w) >= 3}
        if (
            name.lower() in lowered
            or any(w in words or w + "s" in words for w in salient)
            or _numeric_arguments(function.get("parameters"), numbers)
        ):
            found.append(name)
    return found


def _numeric_arguments(parameters: Any, numbers: int) -> bool:
    """True if the tool requires only numbers and ``numbers`` of them are available."""
    if not isinstance(parameters, Mapping):
        return False
    required = parameters.get("required") or []
    properties = parameters.get("properties") or {}
    kinds = [properties.get(name, {}).get("type") for name in required]
    return bool(kinds) and numbers >= len(kinds) and all(k in ("integer", "number") for k in kinds)


def _json_answer(
    messages: Sequence[Message], user_text: str, response_format: Mapping[str, Any] | None
) -> str | None:
    kind = (response_format or {}).get("type")
    if kind == "json_schema":
        schema = response_format.get("json_schema", {}).get("schema", {})  # type: ignore[union-attr]
        return json.dumps(_synthesize(schema, schema, _SampleFiller(), ""), ensure_ascii=False)
    if kind == "json_object":
        prose = " ".join(message_text(m) for m in messages)
        keys = [k for k in _quoted(prose) if _IDENTIFIER.fullmatch(k) and k.lower() != "json"]
        obj = {k: f"sample {k.replace('_', ' ')}" for k in dict.fromkeys(keys)}
        return json.dumps(obj or {"answer": f"You said: {user_text}"}, ensure_ascii=False)
    return None


def _quoted(text: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(text)]


def _arguments(parameters: Any, user_text: str) -> dict[str, Any]:
    if not isinstance(parameters, Mapping):
        return {}
    value = _synthesize(parameters, parameters, _ArgumentFiller(user_text), "")
    return value if isinstance(value, dict) else {}


class _SampleFiller:
    """Leaf values for JSON answers: short text derived from the field's name or description."""

    include_optional = True

    def string(self, name: str, schema: Mapping[str, Any]) -> str:
        return str(schema.get("description") or f"sample {name.replace('_', ' ')}".strip())

    def number(self) -> float | None:
        return None


class _ArgumentFiller:
    """Leaf values for tool arguments, taken from the user's text in order."""

    include_optional = False

    def __init__(self, text: str) -> None:
        self._numbers = [float(n) for n in _NUMBER.findall(text)]
        place = _PLACE.search(text)
        self._phrases = [*_quoted(text), *([place.group(1).strip()] if place else []), text.strip()]

    def string(self, name: str, schema: Mapping[str, Any]) -> str:
        return self._phrases.pop(0) if len(self._phrases) > 1 else self._phrases[0]

    def number(self) -> float | None:
        return self._numbers.pop(0) if self._numbers else None


def _resolve(schema: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        schema = node
    return schema if isinstance(schema, Mapping) else {}


def _synthesize(
    schema: Any,
    root: Mapping[str, Any],
    fill: _SampleFiller | _ArgumentFiller,
    name: str,
    depth: int = 0,
) -> Any:
    """A value valid for ``schema`` (the common JSON-schema subset tools and formats use).

    Below `_MAX_DEPTH` optional branches are left out, so recursive schemas terminate.
    """
    schema = _resolve(schema, root)
    shallow = depth < _MAX_DEPTH
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [_resolve(o, root) for o in schema[key]]
            if not shallow and any(o.get("type") == "null" for o in options):
                return None
            option = next((o for o in options if o.get("type") != "null"), options[0])
            extra = {k: v for k, v in schema.items() if k not in (key, "default")}
            return _synthesize({**extra, **option}, root, fill, name, depth)
    if schema.get("allOf"):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged.update(_resolve(part, root))
        return _synthesize(merged, root, fill, name, depth)

    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        required = set(schema.get("required", ()))
        return {
            key: _synthesize(sub, root, fill, key, depth + 1)
            for key, sub in schema.get("properties", {}).items()
            if (fill.include_optional and shallow) or key in required
        }
    if kind == "array":
        return [
            _synthesize(schema.get("items", {}), root, fill, name, depth + 1)
            for _ in range(schema.get("minItems", 0))
        ]
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind in ("integer", "number"):
        return _bounded(fill.number(), schema, integer=kind == "integer")
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    text = fill.string(name, schema)
    return text[: schema["maxLength"]] if isinstance(schema.get("maxLength"), int) else text


def _bounded(value: float | None, schema: Mapping[str, Any], *, integer: bool) -> float | int:
    """``value`` (or a default) moved inside the schema's bounds."""
    lows = [b for b in [schema.get("minimum")] if _is_number(b)] + [
        b + 1 for b in [schema.get("exclusiveMinimum")] if _is_number(b)
    ]
    highs = [b for b in [schema.get("maximum")] if _is_number(b)] + [
        b - 1 for b in [schema.get("exclusiveMaximum")] if _is_number(b)
    ]
    low = max(lows, default=None)
    high = min(highs, default=None)
    result = 1 if value is None else value
    if high is not None and result > high:
        result = high
    if low is not None and result < low:
        result = low
    return round(result) if integer else result


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def embed_text(text: str, dimension: int) -> list[float]:
    """Hashed bag of words, L2-normalised: stable per text, closer for texts sharing words."""
    vector = [0.0] * dimension
    words = [t.strip().lower() for t in split_tokens(text) if t.strip()] or [text]
    for word in words:
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % dimension] += 1.0 if digest >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]
