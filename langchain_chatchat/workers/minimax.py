"""MiniMax: the current chat API (`/v1/text/chatcompletion_v2`) and `embo-01` embeddings.

Transport: HTTPTransport via the OpenAI-compatible worker (MiniMax has no maintained Python SDK).

MiniMax differs from OpenAI in three places, all handled here:
- failures can come back as HTTP 200 with `base_resp: {status_code, status_msg}` (also inside
  a stream), so every body is checked;
- a stream ends with a snapshot chunk that repeats the whole message (`message`, not `delta`)
  together with the real usage; only what was not streamed yet is passed on;
- embeddings have their own shape (`texts` + `type: db|query` → `vectors`) and need the
  account's GroupId as a query parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from langchain_chatchat.workers.endpoint import Auth, Endpoint, ErrorFields
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ErrorTable,
    PermissionDeniedError,
    RateLimitError,
    UpstreamServerError,
    UpstreamTimeoutError,
)
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
    ResponseFormat,
    StreamReader,
    ToolChoiceMode,
    tool_call_delta,
)
from langchain_chatchat.workers.sampling import SamplingRanges
from langchain_chatchat.workers.streaming import _new_suffix
from langchain_chatchat.workers.types import ChatDelta, EmbeddingRequest, EmbeddingResult

DEFAULT_BASE_URL = "https://api.minimaxi.com/v1"


class MiniMaxAuth(Auth):
    """Bearer MINIMAX_API_KEY; the `GroupId` query parameter where the account needs it."""

    def __init__(self, api_key: str | None, *, group_id: str | None = None) -> None:
        super().__init__(api_key)
        self.group_id = group_id

    def params(self) -> dict[str, str]:
        return {"GroupId": self.group_id} if self.group_id else {}


def _base_resp_error(body: Mapping[str, Any]) -> ErrorFields | None:
    """MiniMax reports failures as HTTP 200 with `base_resp: {status_code, status_msg}`."""
    status = body.get("base_resp") or {}
    code = status.get("status_code") if isinstance(status, Mapping) else None
    if code in (None, 0, "0"):
        return None
    return ErrorFields(code=str(code), message=status.get("status_msg") or f"MiniMax error {code}")


MINIMAX = Endpoint(
    provider="minimax",
    default_base_url=DEFAULT_BASE_URL,
    api_key_env="MINIMAX_API_KEY",
    base_url_env="MINIMAX_BASE_URL",
    auth=MiniMaxAuth,
    body_error=_base_resp_error,
    # From MiniMax's reference (platform.minimaxi.com/document/error_code): 1000 unknown, 1001
    # timeout, 1002 rate limit, 1004 auth, 1008 balance, 1013/1024/1033 internal, 1026/1027
    # sensitive input/output, 1039 tokens-per-minute limit, 1041 connection limit, 2013 bad
    # parameters, 2045 rate-growth limit, 2049 invalid API key, 2056 usage limit (quota: not
    # retryable).
    errors=ErrorTable(
        {
            **dict.fromkeys(("1000", "1013", "1024", "1033"), UpstreamServerError),
            "1001": UpstreamTimeoutError,
            **dict.fromkeys(("1002", "1039", "1041", "2045"), RateLimitError),
            **dict.fromkeys(("1004", "2049"), AuthenticationError),
            **dict.fromkeys(("1008", "2056"), PermissionDeniedError),
            **dict.fromkeys(("1026", "1027"), ContentFilterError),
            "2013": BadRequestError,
        }
    ),
)


class MiniMaxWorker(OpenAICompatibleWorker):
    """MiniMax-M1 / MiniMax-Text-01 / abab models: tools ("auto"/"none"), reasoning_content,
    JSON schema output (MiniMax-Text-01).

    chatcompletion_v2 (platform.minimaxi.com/document/ChatCompletion v2) documents
    `max_completion_tokens` (max_tokens is deprecated), temperature in (0, 1] and top_p in
    (0, 1]; 0 is sent as 0.01 (2013 "invalid params" otherwise)."""

    endpoint: ClassVar[Endpoint] = MINIMAX
    chat_path: ClassVar[str] = "/text/chatcompletion_v2"
    include_usage_option: ClassVar[bool] = False
    tool_choices: ClassVar[frozenset[ToolChoiceMode]] = frozenset({"auto", "none"})
    response_formats: ClassVar[frozenset[ResponseFormat]] = frozenset({"json_schema"})

    def sampling_ranges(self, model: str) -> SamplingRanges:
        return {"temperature": (0.01, 1.0), "top_p": (0.01, 1.0)}

    def max_tokens_field(self, model: str) -> str:
        return "max_completion_tokens"

    def delta_from_choice(self, choice: dict[str, Any], reader: StreamReader) -> ChatDelta:
        if "delta" in choice or not isinstance(choice.get("message"), Mapping):
            return super().delta_from_choice(choice, reader)
        message = choice["message"]  # the closing snapshot: pass on only what is new
        calls = message.get("tool_calls") or []
        return ChatDelta(
            text=_new_suffix(reader.text, message.get("content") or ""),
            reasoning=_new_suffix(reader.reasoning, message.get("reasoning_content") or ""),
            tool_calls=[]
            if reader.tool_calls_seen
            else [tool_call_delta(c, i) for i, c in enumerate(calls)],
        )


class MiniMaxEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """embo-01: documents are embedded as `db`, queries as `query`."""

    endpoint: ClassVar[Endpoint] = MINIMAX
    default_batch_size: ClassVar[int] = 16

    def embedding_payload(self, request: EmbeddingRequest) -> dict[str, Any]:
        kind = "query" if request.text_type == "query" else "db"
        return {"model": request.model, "texts": request.texts, "type": kind, **request.extra}

    def parse_embeddings(
        self, body: Any, headers: Mapping[str, str], request: EmbeddingRequest
    ) -> EmbeddingResult:
        usage = {"total_tokens": body.get("total_tokens") or 0}
        return self._result(body.get("vectors") or [], usage, body, headers, request)
