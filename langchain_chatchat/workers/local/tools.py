"""Hermes / Qwen2.5-style tool calling: `<tool_call>{"name": ..., "arguments": ...}</tool_call>`.

Whether a model can call tools is a property of its chat template: the template must render the
`tools` variable and teach the `<tool_call>` format. Output is split into plain text and
complete tool calls while streaming; a call is emitted when its closing tag arrives (or the reply
ends), with arguments re-serialised as a JSON string as OpenAI sends them.
"""

from __future__ import annotations

import json
import re
import uuid

from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.local.text import partial_suffix
from langchain_chatchat.workers.types import ToolCallDelta

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_USES_TOOLS = re.compile(r"\btools\b")
_NAME = re.compile(r'"name"\s*:\s*"([^"]*)"')


def check_tool_template(template: str, model: str) -> None:
    """Raise a clear BadRequestError unless `template` renders Hermes-style tools."""
    if not _USES_TOOLS.search(template):
        raise BadRequestError(
            f"the chat template of local model {model!r} does not support tools; "
            "use a tool-capable model (e.g. Qwen2.5) or pass a chat_template that renders `tools`",
            provider="local",
            param="tools",
        )
    if OPEN not in template:
        raise BadRequestError(
            f"the chat template of local model {model!r} uses a tool-call format other than "
            "Hermes/Qwen <tool_call> blocks, which is the only one parsed",
            provider="local",
            param="tools",
        )


def forced_prefix(tool_choice: str | None, tool_names: list[str]) -> str:
    """Text to start the reply with so the model must call a tool (or this tool)."""
    if tool_choice in (None, "auto", "none"):
        return ""
    if tool_choice == "required":
        return f"{OPEN}\n"
    if tool_choice not in tool_names:
        raise BadRequestError(
            f"tool_choice {tool_choice!r} names no tool in the request ({tool_names})",
            provider="local",
            param="tool_choice",
        )
    return f'{OPEN}\n{{"name": {json.dumps(tool_choice)}, "arguments": '


class ToolCallParser:
    """Splits streamed text into plain text and complete tool calls."""

    def __init__(self) -> None:
        self._buffer = ""
        self._in_call = False
        self.count = 0

    def push(self, text: str) -> tuple[str, list[ToolCallDelta]]:
        self._buffer += text
        plain: list[str] = []
        calls: list[ToolCallDelta] = []
        while True:
            if not self._in_call:
                start = self._buffer.find(OPEN)
                if start < 0:
                    held = partial_suffix(self._buffer, (OPEN,))
                    plain.append(self._visible(self._buffer[: len(self._buffer) - held]))
                    self._buffer = self._buffer[len(self._buffer) - held :] if held else ""
                    break
                plain.append(self._visible(self._buffer[:start]))
                self._buffer, self._in_call = self._buffer[start + len(OPEN) :], True
            else:
                end = self._buffer.find(CLOSE)
                if end < 0:
                    break
                calls.append(self._call(self._buffer[:end]))
                self._buffer, self._in_call = self._buffer[end + len(CLOSE) :], False
        return "".join(plain), calls

    def flush(self) -> tuple[str, list[ToolCallDelta]]:
        """End of reply: an unclosed call (models often stop right after the JSON) still counts."""
        rest, self._buffer = self._buffer, ""
        if self._in_call:
            self._in_call = False
            return "", [self._call(rest)] if rest.strip() else []
        return self._visible(rest), []

    def _visible(self, text: str) -> str:
        # whitespace between calls is layout, not content
        return "" if self.count and not text.strip() else text

    def _call(self, body: str) -> ToolCallDelta:
        index, self.count = self.count, self.count + 1
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        try:
            payload = json.loads(body)
            name, arguments = (
                payload["name"],
                payload.get("arguments", payload.get("parameters", {})),
            )
        except (ValueError, KeyError, TypeError):
            # malformed output stays visible as an invalid tool call rather than vanishing
            name_match = _NAME.search(body)
            name = name_match.group(1) if name_match else ""
            return ToolCallDelta(index=index, id=call_id, name=name, arguments=body.strip())
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        return ToolCallDelta(index=index, id=call_id, name=str(name), arguments=arguments)
