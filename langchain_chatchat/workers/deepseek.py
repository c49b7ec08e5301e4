"""DeepSeek (api.deepseek.com): OpenAI-style, with reasoning_content from thinking models.

Transport: HTTPTransport via the OpenAI-compatible worker (DeepSeek ships no SDK of its own;
its docs use the OpenAI SDK against this same wire format).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from langchain_chatchat.workers.base import MessageRules
from langchain_chatchat.workers.endpoint import Endpoint
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker, ResponseFormat
from langchain_chatchat.workers.types import ChatRequest

DEFAULT_BASE_URL = "https://api.deepseek.com"


DEEPSEEK = Endpoint(
    provider="deepseek",
    default_base_url=DEFAULT_BASE_URL,
    api_key_env="DEEPSEEK_API_KEY",
    base_url_env="DEEPSEEK_BASE_URL",
)


class DeepSeekWorker(OpenAICompatibleWorker):
    """deepseek-chat / deepseek-reasoner.

    - reasoning_content streams alongside content; in thinking mode the reasoning of a turn that
      called tools must be sent back with it (the API answers 400 otherwise), so assistant turns
      with tool calls carry their reasoning_content;
    - JSON mode (`json_object`) but no `json_schema` response format;
    - text only; errors are OpenAI-shaped with the documented statuses (400, 401, 402
      insufficient balance, 422, 429, 500, 503 overloaded), mapped by status;
    - thinking mode (`deepseek-reasoner`, or `thinking: {"type": "enabled"}` on deepseek-chat)
      does not take a forced tool_choice (api-docs.deepseek.com/guides/thinking_mode: tool_choice
      "required" / a named function are not supported while thinking; unverified wording): a
      call that forces a tool turns thinking off where it was switched on, and on
      deepseek-reasoner offers only the forced tool with "auto";
    - finish_reason `insufficient_system_resource` (the reply was cut by the inference system)
      fails the call instead of passing for a complete answer; usage's
      `prompt_cache_hit_tokens` is the cached part of the prompt.
    """

    endpoint: ClassVar[Endpoint] = DEEPSEEK
    message_rules: ClassVar[MessageRules] = MessageRules(images=False)
    response_formats: ClassVar[frozenset[ResponseFormat]] = frozenset({"json_object"})
    max_stop: ClassVar[int] = 16
    echo_reasoning: ClassVar[Literal["never", "tool_calls", "always"]] = "tool_calls"

    def thinking_mode(self, request: ChatRequest) -> Literal["off", "switchable", "always"]:
        if request.model == "deepseek-reasoner":
            return "always"
        thinking = request.extra.get("thinking")
        enabled = isinstance(thinking, Mapping) and thinking.get("type") == "enabled"
        return "switchable" if enabled else "off"

    def disable_thinking(self, payload: dict[str, Any]) -> None:
        payload["thinking"] = {"type": "disabled"}
