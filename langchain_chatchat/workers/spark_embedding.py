"""iFlytek Spark embeddings (讯飞 "llm embedding" protocol) over its natively signed HTTP API.

Unlike Spark chat (an OpenAI-style API with a Bearer APIPassword), the embedding service is
iFlytek's own protocol, authorised separately from the chat models:

- ``POST https://emb-cn-huabei-1.xf-yun.com/`` (https://www.xfyun.cn/doc/spark/Embedding_api.html);
- authentication (https://www.xfyun.cn/doc/spark/http_url_authentication.html): the query string
  carries ``host``, ``date`` (RFC 1123, GMT; the server rejects a skew over 300 s) and
  ``authorization`` = base64 of ``api_key="…", algorithm="hmac-sha256", headers="host date
  request-line", signature="…"``, where the signature is base64 HMAC-SHA256 (APISecret) of
  ``host: …\\ndate: …\\nPOST / HTTP/1.1``;
- the body is a JSON envelope: ``header`` (app_id, uid, status=3), ``parameter.emb`` (``domain``:
  ``para`` for knowledge text, ``query`` for questions; ``feature`` output format) and
  ``payload.messages.text`` = base64 of ``{"messages": [{"content": TEXT, "role": "user"}]}``;
- the reply is ``{"header": {"code", "message", "sid"}, "payload": {"feature": {"text": …}}}`` where
  ``text`` is base64 of little-endian float32s (2560 of them); ``header.code`` != 0 is an error.

One text per request, so `batch_limit` is 1: the base class sends documents one by one (sync) or
concurrently (async, `max_concurrent_batches` at a time). Requests go through a `Transport`
(signed afresh for every request and retry, so `date` is always current); error codes share
Spark chat's table (`SPARK_ERRORS`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any, ClassVar
from urllib.parse import urlsplit

from langchain_chatchat.workers.base import EmbeddingWorker
from langchain_chatchat.workers.endpoint import decode_json, encode_json
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ChatchatError,
    UpstreamServerError,
    error_for_status,
)
from langchain_chatchat.workers.spark import SPARK_ERRORS
from langchain_chatchat.workers.transport import HTTPReply, HTTPRequest, HTTPTransport, Transport
from langchain_chatchat.workers.types import EmbeddingRequest, EmbeddingResult

PROVIDER = "spark"
DEFAULT_BASE_URL = "https://emb-cn-huabei-1.xf-yun.com/"
DEFAULT_MODEL = "llm-embedding"
DIMENSION = 2560
"""Vector size the service documents ("返回2560维的向量数组")."""
MAX_DATE_SKEW = 300
"""Seconds of clock skew the gateway tolerates between `date` and its own clock."""
DOMAINS: Mapping[str, str] = {"document": "para", "query": "query"}
"""EmbeddingRequest.text_type → the API's `parameter.emb.domain`."""
ALGORITHM = "hmac-sha256"
SIGNED_HEADERS = "host date request-line"


# -- signing (pure functions) ----------------------------------------------------------------------
def rfc1123_date(timestamp: float | None = None) -> str:
    """``Fri, 05 May 2023 10:43:39 GMT`` for ``timestamp`` (now by default); locale-independent."""
    return formatdate(timestamp, usegmt=True)


def signature_origin(host: str, date: str, method: str = "POST", path: str = "/") -> str:
    """The signed text: ``host: …\\ndate: …\\n{METHOD} {path} HTTP/1.1``."""
    return f"host: {host}\ndate: {date}\n{method.upper()} {path} HTTP/1.1"


def sign(api_secret: str, host: str, date: str, method: str = "POST", path: str = "/") -> str:
    """base64(HMAC-SHA256(APISecret, signature_origin)), the ``signature`` value."""
    digest = hmac.new(
        api_secret.encode(), signature_origin(host, date, method, path).encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def authorization(
    api_key: str, api_secret: str, host: str, date: str, method: str = "POST", path: str = "/"
) -> str:
    """The ``authorization`` query value: base64 of the api_key/algorithm/headers/signature line."""
    signature = sign(api_secret, host, date, method, path)
    origin = f'api_key="{api_key}", algorithm="{ALGORITHM}", headers="{SIGNED_HEADERS}", signature="{signature}"'
    return base64.b64encode(origin.encode()).decode()


def signed_query(
    url: str, api_key: str, api_secret: str, *, method: str = "POST", date: str | None = None
) -> dict[str, str]:
    """``{"authorization", "date", "host"}`` for a request to ``url`` (the query parameters)."""
    parts = urlsplit(url)
    date = date or rfc1123_date()
    host, path = parts.netloc, parts.path or "/"
    return {
        "authorization": authorization(api_key, api_secret, host, date, method, path),
        "date": date,
        "host": host,
    }


# -- wire format -------------------------------------------------------------------------------------
def encode_text(text: str) -> str:
    """``payload.messages.text``: base64 of the UTF-8 JSON ``{"messages": [{"content", "role"}]}``."""
    document = {"messages": [{"content": text, "role": "user"}]}
    return base64.b64encode(json.dumps(document, ensure_ascii=False).encode()).decode()


def build_body(app_id: str, text: str, domain: str, uid: str | None = None) -> dict[str, Any]:
    """The request envelope for one text (``domain``: "para" or "query")."""
    header: dict[str, Any] = {"app_id": app_id, "status": 3}
    if uid:
        header["uid"] = uid
    return {
        "header": header,
        "parameter": {
            "emb": {
                "domain": domain,
                "feature": {"encoding": "utf8", "compress": "raw", "format": "plain"},
            }
        },
        "payload": {
            "messages": {
                "encoding": "utf8",
                "compress": "raw",
                "format": "json",
                "status": 3,
                "text": encode_text(text),
            }
        },
    }


def encode_vector(vector: list[float]) -> str:
    """base64 of little-endian float32s (what the service sends as ``payload.feature.text``)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def decode_vector(text: str) -> list[float]:
    """``payload.feature.text`` → floats; raises ValueError if it is not base64 float32 data."""
    raw = base64.b64decode(text, validate=True)
    if not raw or len(raw) % 4:
        raise ValueError(f"{len(raw)} bytes is not a float32 vector")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


# -- worker --------------------------------------------------------------------------------------------
class SparkEmbeddingWorker(EmbeddingWorker):
    """One signed request per text; `EmbeddingRequest.text_type` picks the domain.

    ``extra`` may hold ``domain`` ("para" / "query", overriding the text type) and ``uid``
    (the optional per-user id in the request header).
    """

    provider: ClassVar[str] = PROVIDER
    default_batch_size: ClassVar[int] = 1

    _EXTRA_KEYS: ClassVar[frozenset[str]] = frozenset({"domain", "uid"})

    def __init__(
        self,
        *,
        app_id: str | None,
        api_key: str | None,
        api_secret: str | None,
        base_url: str | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 2,
        transport: Transport | None = None,
    ) -> None:
        missing = [
            env
            for value, env in (
                (app_id, "IFLYTEK_SPARK_APP_ID"),
                (api_key, "IFLYTEK_SPARK_API_KEY"),
                (api_secret, "IFLYTEK_SPARK_API_SECRET"),
            )
            if not value
        ]
        if missing or not (app_id and api_key and api_secret):
            raise AuthenticationError(
                "Spark embeddings need the app's APPID, APIKey and APISecret: pass app_id=, api_key=, "
                f"api_secret= or set {', '.join(missing)}",
                provider=PROVIDER,
            )
        super().__init__(timeout=timeout, max_retries=max_retries)
        self._app_id, self._api_key, self._api_secret = app_id, api_key, api_secret
        base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        # The signed request-line names the exact path the request goes to ("/" for the default).
        self.url = base_url if urlsplit(base_url).path else base_url + "/"
        self.transport: Transport = transport or HTTPTransport(PROVIDER, timeout=timeout)

    def batch_limit(self, model: str) -> int:
        return 1

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- requests ----------------------------------------------------------------------------------------
    def http_request(self, request: EmbeddingRequest) -> HTTPRequest:
        return HTTPRequest(
            url=self.url,
            body=encode_json(self.embedding_body(request)),
            params=signed_query(self.url, self._api_key, self._api_secret),
        )

    def domain_for(self, request: EmbeddingRequest) -> str:
        domain = request.extra.get("domain") or DOMAINS[request.text_type]
        if domain not in ("para", "query"):
            raise BadRequestError(
                f"Spark embedding domain must be 'para' or 'query', got {domain!r}",
                provider=PROVIDER,
                param="domain",
            )
        return domain

    def embedding_body(self, request: EmbeddingRequest) -> dict[str, Any]:
        if len(request.texts) != 1:
            raise BadRequestError(
                "Spark embeds one text per request", provider=PROVIDER, param="input"
            )
        unknown = set(request.extra) - self._EXTRA_KEYS
        if unknown:
            raise BadRequestError(
                f"Spark embeddings accept only {sorted(self._EXTRA_KEYS)} as extra parameters, got {sorted(unknown)}",
                provider=PROVIDER,
                param=min(unknown),
            )
        if request.dimensions is not None and request.dimensions != DIMENSION:
            raise BadRequestError(
                f"Spark embeddings are {DIMENSION}-dimensional; dimensions={request.dimensions} is not supported",
                provider=PROVIDER,
                param="dimensions",
            )
        return build_body(
            self._app_id, request.texts[0], self.domain_for(request), request.extra.get("uid")
        )

    # -- replies and errors ------------------------------------------------------------------------------
    def parse_reply(self, reply: HTTPReply, request: EmbeddingRequest) -> EmbeddingResult:
        """The vector in a reply, or the typed error the reply stands for."""
        body = decode_json(reply.body)
        header = body.get("header") if isinstance(body, Mapping) else None
        request_id = header.get("sid") if isinstance(header, Mapping) else None
        request_id = request_id if isinstance(request_id, str) else None
        if isinstance(header, Mapping) and header.get("code") not in (None, 0, "0"):
            code = str(header["code"])
            message = str(header.get("message") or f"Spark returned error code {code}")
            kwargs: dict[str, Any] = {"provider": PROVIDER, "request_id": request_id}
            if reply.status >= 400 or SPARK_ERRORS.classify(200, code, None, message):
                raise SPARK_ERRORS.error(reply.status, message, code=code, **kwargs)
            # An unlisted engine code: the service failed, but nothing says a retry would help.
            raise UpstreamServerError(message, code=code, retryable=False, **kwargs)
        if reply.status >= 400:
            raise _gateway_error(reply.status, body, request_id)
        if not isinstance(header, Mapping) or header.get("code") is None:
            raise UpstreamServerError(
                "Spark sent a reply without its header code", provider=PROVIDER
            )
        feature = (body.get("payload") or {}).get("feature") or {}
        try:
            vector = decode_vector(feature["text"])
        except (KeyError, TypeError, ValueError) as error:
            raise UpstreamServerError(
                f"Spark sent an unreadable embedding ({type(error).__name__}: {error})",
                provider=PROVIDER,
                request_id=request_id,
            ) from error
        return EmbeddingResult(
            vectors=[vector], usage=None, request_id=request_id, model=request.model
        )

    # -- transport ---------------------------------------------------------------------------------------
    def _embed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        return self.parse_reply(self.transport.post(self.http_request(request)), request)

    async def _aembed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        return self.parse_reply(await self.transport.apost(self.http_request(request)), request)


def _gateway_error(status: int, body: Any, request_id: str | None) -> ChatchatError:
    """An error from the signing gateway (or a proxy), which answers without the envelope,
    e.g. `{"message": "..."}`; it rejects a bad signature, unknown key or stale date with
    401/403."""
    message = body.get("message") if isinstance(body, Mapping) else None
    if message is None and isinstance(body, str):
        message = body.strip()[:500]
    message = str(message or f"Spark returned HTTP {status}")
    if status in (401, 403):
        return AuthenticationError(
            message, status_code=status, provider=PROVIDER, request_id=request_id
        )
    return error_for_status(status, message, provider=PROVIDER, request_id=request_id)
