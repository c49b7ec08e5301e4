"""An emulator of iFlytek Spark's embedding service ("llm embedding" protocol) for offline tests.

    from langchain_chatchat.testing import Fault
    from langchain_chatchat.testing.spark_embedding import SparkEmbeddingEmulator

    with SparkEmbeddingEmulator() as emu:
        emu.enqueue(Fault.http(200, "11202", "秒级流控超限"))
        SparkEmbeddings(base_url=emu.base_url, **emu.credentials).embed_query("你好")

What it checks, as iFlytek documents it (https://www.xfyun.cn/doc/spark/Embedding_api.html and
https://www.xfyun.cn/doc/spark/http_url_authentication.html):

- the signed query string: ``host``, ``date`` (RFC 1123 GMT, at most `max_skew` = 300 s from the
  emulator's clock) and ``authorization`` (base64 of ``api_key="…", algorithm="hmac-sha256",
  headers="host date request-line", signature="…"``), the signature being recomputed with the
  APISecret over ``host: …\\ndate: …\\n{METHOD} {path} HTTP/1.1``; ``host`` must be the Host the
  request was sent to;
- the envelope: ``header.app_id`` (this app's), ``header.status`` = 3, ``parameter.emb.domain``
  ("para" / "query"), ``payload.messages.text`` = base64 of ``{"messages": [{"content", "role"}]}``
  with one text of at most 2048 tokens (the emulator's tokenizer);
- the reply: ``{"header": {"code": 0, "message": "success", "sid"}, "payload": {"feature": {…,
  "text": base64 little-endian float32}}}``, a deterministic `embed_text` vector per text and
  domain (the two domains are different models, so a query and a document of the same text get
  different, though similar, vectors).

Not in the retrieved docs, so chosen here and kept in one place (`GATEWAY_*`, `CODE_*`): the
HTTP status and ``{"message": …}`` body of the gateway's signature/skew rejections (Kong-style
401/403), and the ``header.code`` values for a malformed request (10163), a wrong app_id (10313)
and an over-long text (10907, Spark's documented "too many tokens" code for chat), each sent
with HTTP 200 (the docs show ``header.code`` errors but not the HTTP status they come with).

Scripted items: ``Fault.http(status, code, message)`` answers with that HTTP status and the
envelope ``header.code = int(code)`` (a non-numeric ``code`` gives a gateway-style ``{"message"}``
body instead); ``Fault.stream_error`` is treated the same (the API does not stream);
``Fault.hang(seconds)`` delays the answer; a scripted `Reply` is consumed and ignored.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from langchain_chatchat.testing.responder import count_tokens, embed_text
from langchain_chatchat.testing.script import Fault, RecordedRequest
from langchain_chatchat.testing.server import EmulatorBase, TimedResponse
from langchain_chatchat.workers.spark_embedding import (
    ALGORITHM,
    DIMENSION,
    MAX_DATE_SKEW,
    SIGNED_HEADERS,
    encode_vector,
    sign,
)

__all__ = ["SparkEmbeddingEmulator"]

MAX_TOKENS = 2048
GATEWAY_NO_AUTH = (401, "Unauthorized")
GATEWAY_NO_DATE = (
    401,
    "HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication",
)
GATEWAY_BAD_SIGNATURE = (401, "HMAC signature does not match")
GATEWAY_SKEW = (403, "HMAC signature cannot be verified")
CODE_INVALID = 10163
CODE_APP_ID = 10313
CODE_TOO_LONG = 10907

_JSON = "application/json"
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


class _Reject(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


class SparkEmbeddingEmulator(EmulatorBase):
    """Spark's embedding service on 127.0.0.1 (``base_url`` is what clients take).

    ``clock`` gives the emulator's "now" (seconds since the epoch) for the date-skew check, so a
    test can put the server's clock ahead of or behind the client's.
    """

    def __init__(
        self,
        app_id: str = "test-app",
        api_key: str = "test-key",
        api_secret: str = "test-secret",
        *,
        dimension: int = DIMENSION,
        max_skew: float = MAX_DATE_SKEW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.app_id = app_id
        self.api_key = api_key
        self.api_secret = api_secret
        self.dimension = dimension
        self.max_skew = max_skew
        self.clock = clock
        self._serve(Starlette(routes=[Route("/", self._embed, methods=["POST"])]))

    @property
    def base_url(self) -> str:
        return self.url + "/"

    @property
    def credentials(self) -> dict[str, str]:
        """``app_id`` / ``api_key`` / ``api_secret`` keyword arguments for a client."""
        return {"app_id": self.app_id, "api_key": self.api_key, "api_secret": self.api_secret}

    @staticmethod
    def embedded(record: RecordedRequest) -> tuple[str, str]:
        """``(domain, text)`` a recorded (valid) request asked to embed."""
        body = record.body or {}
        document = json.loads(base64.b64decode(body["payload"]["messages"]["text"]))
        return body["parameter"]["emb"]["domain"], document["messages"][-1]["content"]

    def vector(self, text: str, domain: str) -> list[float]:
        """The vector the emulator answers for ``text`` in ``domain`` (before float32 rounding)."""
        return embed_text(f"{domain}: {text}", self.dimension)

    # -- request handling ------------------------------------------------------------------------------
    async def _embed(self, request: Request) -> TimedResponse:
        sid = f"emb{uuid.uuid4().hex[:8]}@dx{uuid.uuid4().hex[:16]}"
        record = await self._record(request, sid)
        try:
            self._authenticate(request)
            domain, text = self._validate(record.body, sid)
        except _Reject as reject:
            return self._respond(reject.status, reject.body, record)
        item, hang = self._take()
        if isinstance(item, Fault):
            if item.code.lstrip("-").isdigit():
                return self._respond(
                    item.status, self._envelope(int(item.code), item.message, sid), record, hang
                )
            return self._respond(item.status, {"message": item.message}, record, hang)
        feature = {
            "encoding": "utf8",
            "compress": "raw",
            "format": "plain",
            "seq": "0",
            "status": "2",
            "text": encode_vector(self.vector(text, domain)),
        }
        return self._respond(
            200,
            {**self._envelope(0, "success", sid), "payload": {"feature": feature}},
            record,
            hang,
        )

    def _authenticate(self, request: Request) -> None:
        query = request.query_params
        if not query.get("authorization"):
            raise _gateway(GATEWAY_NO_AUTH)
        date = query.get("date")
        try:
            sent_at = parsedate_to_datetime(date).timestamp() if date else None
        except (TypeError, ValueError):
            sent_at = None
        if sent_at is None:
            raise _gateway(GATEWAY_NO_DATE)
        if abs(self.clock() - sent_at) > self.max_skew:
            raise _gateway(GATEWAY_SKEW)
        try:
            fields = dict(
                _AUTH_FIELD.findall(
                    base64.b64decode(query["authorization"], validate=True).decode()
                )
            )
        except (binascii.Error, UnicodeDecodeError):
            raise _gateway(GATEWAY_BAD_SIGNATURE) from None
        host = query.get("host") or ""
        expected = sign(self.api_secret, host, date or "", request.method, request.url.path)
        if (
            fields.get("api_key") != self.api_key
            or fields.get("algorithm") != ALGORITHM
            or fields.get("headers") != SIGNED_HEADERS
            or host != request.headers.get("host")
            or not hmac.compare_digest(fields.get("signature", ""), expected)
        ):
            raise _gateway(GATEWAY_BAD_SIGNATURE)

    def _validate(self, body: Mapping[str, Any] | None, sid: str) -> tuple[str, str]:
        if body is None:
            raise _error(CODE_INVALID, "invalid request body: not a JSON object", sid)
        header = body.get("header") or {}
        if not header.get("app_id"):
            raise _error(CODE_INVALID, "$.header.app_id is required", sid)
        if header.get("app_id") != self.app_id:
            raise _error(CODE_APP_ID, "app_id does not match the API key", sid)
        if header.get("status") != 3:
            raise _error(CODE_INVALID, "$.header.status must be 3", sid)
        emb = (body.get("parameter") or {}).get("emb") or {}
        domain = emb.get("domain")
        if domain not in ("para", "query"):
            raise _error(
                CODE_INVALID, f"$.parameter.emb.domain must be query or para, got {domain!r}", sid
            )
        encoded = ((body.get("payload") or {}).get("messages") or {}).get("text")
        try:
            document = json.loads(base64.b64decode(encoded or "", validate=True))
            messages = document["messages"]
            text = messages[-1]["content"]
        except (TypeError, ValueError, KeyError, IndexError, binascii.Error):
            raise _error(
                CODE_INVALID, '$.payload.messages.text must be base64 of {"messages": [...]}', sid
            ) from None
        if not isinstance(text, str) or not text:
            raise _error(CODE_INVALID, "message content must be a non-empty string", sid)
        if count_tokens(text) > MAX_TOKENS:
            raise _error(CODE_TOO_LONG, f"input exceeds {MAX_TOKENS} tokens", sid)
        return domain, text

    # -- replies ---------------------------------------------------------------------------------------
    @staticmethod
    def _envelope(code: int, message: str, sid: str) -> dict[str, Any]:
        return {"header": {"code": code, "message": message, "sid": sid}}

    @staticmethod
    def _respond(
        status: int, body: Mapping[str, Any], record: RecordedRequest, hang: float = 0.0
    ) -> TimedResponse:
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return TimedResponse(
            status,
            [("content-type", _JSON)],
            [(0.0, payload)],
            hang=hang,
            on_disconnect=record.mark_disconnected,
        )


def _error(code: int, message: str, sid: str) -> _Reject:
    """An engine error: HTTP 200 with a non-zero ``header.code``."""
    return _Reject(200, SparkEmbeddingEmulator._envelope(code, message, sid))


def _gateway(rejection: tuple[int, str]) -> _Reject:
    status, message = rejection
    return _Reject(status, {"message": message})
