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
concurrently (async, `max_concurrent_batches` at a time). Transport, pooled httpx clients and
transport-error mapping come from `OpenAICompatibleClient`; the signing is in the query
(`query_params`), not in headers.
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
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ChatchatError,
    ContentFilterError,
    ContextLengthError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamUnavailableError,
    error_for_status,
)
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleClient
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

# header.code → typed error. From Spark's error-code reference (the table `SparkWorker` uses):
# 10013/10014/10019 content audit, 10907 too many tokens, 11200 not authorised for the service,
# 11201 daily quota, 11202/11203 per-second and concurrency limits, 10007 busy, 10008/10012/10110/
# 10222 engine-side failures. 10160/10161/10163 (malformed / undecodable / invalid request data)
# and 10313 (app_id does not match the key) are the platform's general codes.
ERROR_CODES: Mapping[str, type[ChatchatError]] = {
    **dict.fromkeys(("10160", "10161", "10163"), BadRequestError),
    **dict.fromkeys(("10013", "10014", "10019"), ContentFilterError),
    "10907": ContextLengthError,
    "10313": AuthenticationError,
    "11200": PermissionDeniedError,
    "11201": PermissionDeniedError,
    **dict.fromkeys(("10007", "11202", "11203"), RateLimitError),
    **dict.fromkeys(("10008", "10012", "10110", "10222"), UpstreamUnavailableError),
}


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
class SparkEmbeddingWorker(OpenAICompatibleClient, EmbeddingWorker):
    """One signed request per text; `EmbeddingRequest.text_type` picks the domain.

    ``extra`` may hold ``domain`` ("para" / "query", overriding the text type) and ``uid``
    (the optional per-user id in the request header).
    """

    provider: ClassVar[str] = PROVIDER
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    api_key_env: ClassVar[str | None] = "IFLYTEK_SPARK_API_KEY"
    base_url_env: ClassVar[str | None] = "IFLYTEK_SPARK_EMBEDDING_BASE_URL"
    api_key_required: ClassVar[bool] = True
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
        if missing:
            raise AuthenticationError(
                "Spark embeddings need the app's APPID, APIKey and APISecret: pass app_id=, api_key=, "
                f"api_secret= or set {', '.join(missing)}",
                provider=PROVIDER,
            )
        super().__init__(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._app_id = app_id
        self._api_secret = api_secret
        parts = urlsplit(self.base_url)
        # The signed request-line names the exact path the request goes to ("/" for the default).
        self._endpoint = self.base_url if parts.path else self.base_url + "/"

    def batch_limit(self, model: str) -> int:
        return 1

    # -- request plumbing (OpenAICompatibleClient hooks) -----------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {}  # the signature travels in the query string

    def url(self, path: str) -> str:
        return self._endpoint

    def query_params(self) -> dict[str, str]:
        """Signed afresh for every request (and every retry), so `date` is always current."""
        return {
            **self._default_query,
            **signed_query(self._endpoint, self._api_key or "", self._api_secret or ""),
        }

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
            self._app_id or "", request.texts[0], self.domain_for(request), request.extra.get("uid")
        )

    # -- replies and errors ------------------------------------------------------------------------------
    def check_body(self, body: Any, headers: Mapping[str, str] | None = None) -> None:
        header = body.get("header") if isinstance(body, Mapping) else None
        if not isinstance(header, Mapping) or header.get("code") is None:
            raise UpstreamUnavailableError(
                "Spark sent a reply without its header code", provider=PROVIDER, status_code=502
            )
        if header.get("code") not in (0, "0"):
            raise self.error_from_response(200, body, headers or {})

    def request_id_of(self, body: Any, headers: Mapping[str, str] | None = None) -> str | None:
        header = body.get("header") if isinstance(body, Mapping) else None
        if isinstance(header, Mapping) and isinstance(header.get("sid"), str):
            return header["sid"]
        return None

    def error_from_response(
        self, status: int, body: Any, headers: Mapping[str, str]
    ) -> ChatchatError:
        header = body.get("header") if isinstance(body, Mapping) else None
        request_id = self.request_id_of(body, headers)
        if isinstance(header, Mapping) and header.get("code") not in (None, 0, "0"):
            code = str(header["code"])
            message = str(header.get("message") or f"Spark returned error code {code}")
            kwargs: dict[str, Any] = {"provider": PROVIDER, "code": code, "request_id": request_id}
            error_class = ERROR_CODES.get(code)
            if error_class is not None:
                return error_class(message, **kwargs)
            if status >= 400:
                return error_for_status(status, message, **kwargs)
            # An unlisted engine code: the service failed, but nothing says a retry would help.
            return UpstreamUnavailableError(message, status_code=502, retryable=False, **kwargs)
        # No envelope: the signing gateway (or a proxy) answered, e.g. {"message": "..."}.
        if isinstance(body, Mapping):
            message = body.get("message")
        else:
            message = body.strip()[:500] if isinstance(body, str) else None
        message = str(message or f"Spark returned HTTP {status}")
        kwargs = {"provider": PROVIDER, "request_id": request_id}
        if status in (401, 403):  # the gateway rejects a bad signature, unknown key or stale date
            return AuthenticationError(message, status_code=status, **kwargs)
        return error_for_status(status, message, **kwargs)

    def parse_embedding(
        self, body: Any, headers: Mapping[str, str], request: EmbeddingRequest
    ) -> EmbeddingResult:
        request_id = self.request_id_of(body, headers)
        feature = (
            ((body.get("payload") or {}).get("feature") or {}) if isinstance(body, Mapping) else {}
        )
        try:
            vector = decode_vector(feature["text"])
        except (KeyError, TypeError, ValueError) as error:
            raise UpstreamUnavailableError(
                f"Spark sent an unreadable embedding ({type(error).__name__}: {error})",
                provider=PROVIDER,
                request_id=request_id,
            ) from error
        return EmbeddingResult(
            vectors=[vector], usage=None, request_id=request_id, model=request.model
        )

    # -- transport ------------------------------------------------------------------------------------------
    def _embed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        body, headers = self._post("", self.embedding_body(request))
        return self.parse_embedding(body, headers, request)

    async def _aembed_batch(self, request: EmbeddingRequest) -> EmbeddingResult:
        body, headers = await self._apost("", self.embedding_body(request))
        return self.parse_embedding(body, headers, request)
