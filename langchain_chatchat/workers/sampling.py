"""Provider request rules shared by several workers: sampling ranges and forced tools in thinking
mode. Each provider file says which rule applies to it and cites the source.

Sampling values outside a provider's documented range are clamped to the nearest value it
accepts (what the official SDKs do, e.g. `zhipuai`'s chat completions clamp temperature and
top_p), with a debug log; the provider never sees a value it would answer with a 400.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.types import ChatRequest

logger = logging.getLogger(__name__)

SamplingRanges = Mapping[str, tuple[float, float]]
"""Parameter name ("temperature", "top_p") → (lowest, highest) value the provider accepts."""


def clamp_sampling(request: ChatRequest, ranges: SamplingRanges, provider: str) -> ChatRequest:
    """`request` with temperature / top_p moved inside `ranges` (unchanged when inside)."""
    changes: dict[str, float] = {}
    for name, (low, high) in ranges.items():
        value = getattr(request, name)
        if value is None:
            continue
        clamped = min(max(value, low), high)
        if clamped != value:
            logger.debug(
                "%s accepts %s in [%s, %s]; sending %s for %s",
                provider,
                name,
                low,
                high,
                clamped,
                value,
            )
            changes[name] = clamped
    return replace(request, **changes) if changes else request


def is_forced(choice: Any) -> bool:
    """Whether a wire `tool_choice` forces a tool call ("required" or a named function)."""
    return choice == "required" or isinstance(choice, Mapping)


def unforce_tools(payload: dict[str, Any], provider: str) -> None:
    """For a model that always thinks and refuses forced tools: offer only the forced tool with
    `tool_choice` "auto" (the closest the API accepts). "required" over several tools has no
    such form and is refused before sending."""
    choice, tools = payload.get("tool_choice"), payload.get("tools") or []
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        tools = [tool for tool in tools if (tool.get("function") or {}).get("name") == name]
    elif len(tools) != 1:
        raise BadRequestError(
            f"{provider} cannot force a tool call while the model is thinking, and 'any of "
            f"{len(tools)} tools' has no unforced equivalent; name the tool (tool_choice='name'), "
            "bind a single tool, or turn thinking off",
            provider=provider,
            param="tool_choice",
        )
    logger.debug(
        "%s: thinking models cannot be forced to call a tool; offering only %s",
        provider,
        [t.get("function", {}).get("name") for t in tools],
    )
    payload["tools"], payload["tool_choice"] = tools, "auto"


def thinking_switch(value: bool | str | None, **options: Any) -> dict[str, Any]:
    """The `thinking: {"type": ...}` parameter Zhipu, Ark, Moonshot and DeepSeek share: True →
    "enabled", False → "disabled", a string (Ark's "auto") as given; nothing when None."""
    if value is None:
        return {}
    kind = value if isinstance(value, str) else ("enabled" if value else "disabled")
    return {"thinking": {"type": kind, **{k: v for k, v in options.items() if v is not None}}}
