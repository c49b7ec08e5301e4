"""Prompt strings → chat messages, for the legacy `/v1/completions` path.

Completion clients send one prompt string rendered from a conversation template. The system
prompt (the text before the first role marker) and every turn are kept; only an *empty*
trailing assistant turn (the "your turn" cue) is dropped.

Two shapes are recognised:
- ChatML: `<|im_start|>role\\ncontent<|im_end|>`;
- role-prefixed turns, one per line start, optionally after a `###` separator:
  `System: …`, `### Human: …`, `USER: …`, `Assistant: …` (FastChat, Vicuna, Alpaca-style).
Anything else is a single user message.
"""

from __future__ import annotations

import re

from langchain_chatchat.workers.types import Role, WorkerMessage

_ROLE_NAMES: dict[str, Role] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
}
_CHATML_TURN = re.compile(
    r"<\|im_start\|>\s*(\w+)[ \t]*\n?(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.S
)
_ROLE_MARKER = re.compile(
    r"(?:^|\n)[ \t]*(?:#+[ \t]*)?(" + "|".join(_ROLE_NAMES) + r")[ \t]*:[ \t]*",
    re.I,
)


def prompt_to_messages(prompt: str) -> list[WorkerMessage]:
    """Split a rendered chat prompt into messages, keeping the system prompt."""
    turns = _chatml_turns(prompt) if "<|im_start|>" in prompt else _role_prefixed_turns(prompt)
    if turns and turns[-1].role == "assistant" and not turns[-1].content:
        turns.pop()
    return turns or [WorkerMessage(role="user", content=prompt)]


def _chatml_turns(prompt: str) -> list[WorkerMessage]:
    turns = []
    preamble = prompt[: prompt.index("<|im_start|>")].strip()
    if preamble:
        turns.append(WorkerMessage(role="system", content=preamble))
    for role, content in _CHATML_TURN.findall(prompt):
        turns.append(
            WorkerMessage(role=_ROLE_NAMES.get(role.lower(), "user"), content=content.strip())
        )
    return turns


def _role_prefixed_turns(prompt: str) -> list[WorkerMessage]:
    markers = list(_ROLE_MARKER.finditer(prompt))
    if not markers:
        return []
    turns = []
    preamble = prompt[: markers[0].start()].strip()
    if preamble:
        turns.append(WorkerMessage(role="system", content=preamble))
    for marker, following in zip(markers, [*markers[1:], None], strict=True):
        end = following.start() if following else len(prompt)
        content = prompt[marker.end() : end].strip()
        turns.append(WorkerMessage(role=_ROLE_NAMES[marker.group(1).lower()], content=content))
    return turns
