"""Who a provider is and how to reach it: one `Endpoint` description per provider, and the
`HTTPWorker` base that a provider's chat and embedding workers share.

An `Endpoint` holds what identifies a provider (name, default URL, the environment variables
its SDK reads), how a request is authorised (`Auth`: headers and query parameters, e.g. a
Bearer key, Zhipu's JWT, Azure's api-key and api-version) and how its errors read (an
`ErrorTable`, plus `body_error` for failures reported inside a successful reply). A provider
writes it once; its chat and embedding workers both point at it.

`HTTPWorker` sends JSON through a `Transport` (the default `HTTPTransport`, or any other given
to the constructor, e.g. a `MockTransport` in tests) and turns replies into JSON bodies or typed
errors. It knows no wire format beyond "JSON in, JSON or SSE out".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from langchain_chatchat.workers.base import WorkerBase
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ChatchatError,
    ErrorTable,
    UpstreamServerError,
    retry_after_seconds,
)
from langchain_chatchat.workers.transport import (
    HTTPReply,
    HTTPRequest,
    HTTPTransport,
    Transport,
    asse_data,
    sse_data,
)

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id", "x-tt-logid", "trace-id")


class Auth:
    """Bearer authorisation with the API key (when there is one); providers that sign or
    authorise differently subclass it. Options a subclass takes come from the worker's
    constructor keywords."""

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key

    def headers(self) -> dict[str, str]:
        """Headers for one request (called per request, so tokens may refresh)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def params(self) -> dict[str, str]:
        """Query parameters for one request."""
        return {}

    def base_url(self, configured: str | None) -> str | None:
        """The base URL requests go to, given the configured one (Azure builds its own)."""
        return configured

    def __repr__(self) -> str:  # never show credentials
        return f"{type(self).__name__}()"


@dataclass(frozen=True)
class ErrorFields:
    """What an error reply says: the provider's code, its error type and the message."""

    code: str | None = None
    kind: str | None = None
    message: str | None = None
    status: int | None = None
    """The HTTP status the error stands for, when the reply says (errors inside a 200 body)."""


@dataclass(frozen=True)
class Endpoint:
    """One provider's identity, authorisation and error vocabulary."""

    provider: str
    default_base_url: str | None = None
    api_key_env: str | None = None
    """The environment variable the provider's own SDK reads the key from. Workers never read
    it; the LangChain classes do, and error messages name it."""
    base_url_env: str | None = None
    api_key_required: bool = True
    """Hosted providers need a key; local servers (vLLM, Ollama, ...) usually do not."""
    auth: Callable[..., Auth] = Auth
    errors: ErrorTable = field(default_factory=ErrorTable)
    body_error: Callable[[Mapping[str, Any]], ErrorFields | None] | None = None
    """Finds a failure reported inside a successful reply (MiniMax's `base_resp`, Spark's `code`);
    OpenAI's `{"error": ...}` is always checked."""
    request_id_keys: tuple[str, ...] = ("request_id", "id")


class HTTPWorker(WorkerBase):
    """Endpoint, credentials, transport and error mapping shared by a provider's workers."""

    endpoint: ClassVar[Endpoint]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "endpoint" in cls.__dict__:
            cls.provider = cls.endpoint.provider

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 2,
        transport: Transport | None = None,
        **auth_options: Any,
    ) -> None:
        super().__init__(timeout=timeout, max_retries=max_retries)
        endpoint = self.endpoint
        self.auth = endpoint.auth(api_key, **auth_options)
        base_url = self.auth.base_url(base_url or endpoint.default_base_url)
        if not base_url:
            raise BadRequestError(
                f"{self.provider}: base_url is required", provider=self.provider, param="base_url"
            )
        if endpoint.api_key_required and not api_key:
            hint = f" or set {endpoint.api_key_env}" if endpoint.api_key_env else ""
            raise AuthenticationError(
                f"no {self.provider} API key: pass api_key=...{hint}", provider=self.provider
            )
        self.base_url = base_url.rstrip("/")
        self._default_headers = dict(default_headers or {})
        self._default_query = dict(default_query or {})
        self.transport: Transport = transport or HTTPTransport(self.provider, timeout=timeout)

    # -- requests ------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def http_request(self, path: str, payload: Any) -> HTTPRequest:
        return HTTPRequest(
            url=self.url(path),
            body=encode_json(payload),
            headers={**self._default_headers, **self.auth.headers()},
            params={**self.auth.params(), **self._default_query},
        )

    def post_json(self, path: str, payload: Any) -> tuple[Any, Mapping[str, str]]:
        """POST `payload`; the checked JSON body and the reply's headers."""
        reply = self.transport.post(self.http_request(path, payload))
        return self.checked_body(reply), reply.headers

    async def apost_json(self, path: str, payload: Any) -> tuple[Any, Mapping[str, str]]:
        reply = await self.transport.apost(self.http_request(path, payload))
        return self.checked_body(reply), reply.headers

    @contextmanager
    def stream_json(self, path: str, payload: Any) -> Iterator[StreamedReply]:
        """POST `payload` expecting SSE; a provider that answers with plain JSON instead (an
        error, or a whole reply) gives a `StreamedReply` with `body` set and no events."""
        with self.transport.stream(self.http_request(path, payload)) as reply:
            if not reply.is_event_stream:
                body = self.checked_body(HTTPReply(reply.status, reply.headers, reply.read()))
                yield StreamedReply(reply.headers, body=body)
            else:
                yield StreamedReply(reply.headers, events=sse_data(reply.chunks))

    @asynccontextmanager
    async def astream_json(self, path: str, payload: Any) -> AsyncIterator[AsyncStreamedReply]:
        async with self.transport.astream(self.http_request(path, payload)) as reply:
            if not reply.is_event_stream:
                content = await reply.read()
                body = self.checked_body(HTTPReply(reply.status, reply.headers, content))
                yield AsyncStreamedReply(reply.headers, body=body)
            else:
                yield AsyncStreamedReply(reply.headers, events=asse_data(reply.chunks))

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- replies and errors --------------------------------------------------------------------
    def checked_body(self, reply: HTTPReply) -> Any:
        """The JSON body of a reply, or the typed error it stands for."""
        body = decode_json(reply.body)
        if reply.status >= 400:
            raise self.error_from_response(reply.status, body, reply.headers)
        if not isinstance(body, (dict, list)):
            raise UpstreamServerError(
                f"{self.provider} sent a malformed response body", provider=self.provider
            )
        self.check_body(body, reply.headers)
        return body

    def check_body(self, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Raise for an error carried in a successful reply or stream chunk."""
        if not isinstance(body, Mapping):
            return
        fields = self.endpoint.body_error(body) if self.endpoint.body_error else None
        if fields is None and body.get("error"):
            fields = error_fields(body)
            fields = ErrorFields(
                fields.code, fields.kind, fields.message, _status_of(body["error"])
            )
        if fields is not None:
            raise self._error(fields.status or 400, fields, body, headers or {})

    def request_id_of(self, body: Any, headers: Mapping[str, str] | None = None) -> str | None:
        if isinstance(body, Mapping):
            for key in self.endpoint.request_id_keys:
                if isinstance(body.get(key), str) and body[key]:
                    return body[key]
        for name in REQUEST_ID_HEADERS:
            if headers and headers.get(name):
                return headers[name]
        return None

    def error_from_response(
        self, status: int, body: Any, headers: Mapping[str, str]
    ) -> ChatchatError:
        return self._error(status, error_fields(body), body, headers)

    def _error(
        self, status: int, fields: ErrorFields, body: Any, headers: Mapping[str, str]
    ) -> ChatchatError:
        return self.endpoint.errors.error(
            status,
            fields.message or f"{self.provider} returned HTTP {status}",
            code=fields.code,
            kind=fields.kind,
            provider=self.provider,
            request_id=self.request_id_of(body, headers),
            retry_after=retry_after_seconds(headers),
        )


@dataclass
class StreamedReply:
    """An SSE reply's events (the `data` of each), or the JSON body of a non-streamed answer."""

    headers: Mapping[str, str]
    events: Iterator[bytes] | None = None
    body: Any = None


@dataclass
class AsyncStreamedReply:
    headers: Mapping[str, str]
    events: AsyncIterator[bytes] | None = None
    body: Any = None


# -- JSON and error shapes ---------------------------------------------------------------------
def decode_json(raw: bytes) -> Any:
    """The JSON document in `raw`, or its text when it is not JSON (an HTML error page, say)."""
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:  # also raised for invalid UTF-8
        return raw.decode("utf-8", "replace")


def encode_json(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload)
    except TypeError:  # e.g. non-string keys: let the stdlib say what it accepts
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def error_fields(body: Any) -> ErrorFields:
    """Code, type and message from the error shapes OpenAI-style providers use."""
    if isinstance(body, str):
        return ErrorFields(message=body.strip()[:500] or None)
    if not isinstance(body, Mapping):
        return ErrorFields()
    error = body.get("error", body)
    if isinstance(error, str):
        return ErrorFields(message=error)
    if not isinstance(error, Mapping):
        return ErrorFields()
    message = error.get("message") or error.get("msg") or error.get("detail") or body.get("message")
    if isinstance(message, (list, dict)):
        message = json.dumps(message, ensure_ascii=False)
    code, kind = error.get("code"), error.get("type")
    return ErrorFields(
        code=str(code) if code not in (None, "") else None,
        kind=str(kind) if kind else None,
        message=str(message) if message else None,
    )


def _status_of(error: Any) -> int:
    """The HTTP status an in-body error stands for (vLLM puts it in `code`); 500 if unsaid."""
    if isinstance(error, Mapping):
        for key in ("status", "code"):
            value = error.get(key)
            if isinstance(value, int) and 400 <= value < 600:
                return value
            if isinstance(value, str) and value.isdigit() and 400 <= int(value) < 600:
                return int(value)
    return 500
