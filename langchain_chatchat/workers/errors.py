"""One typed error hierarchy for every provider, and one way to map provider errors onto it.

Every failure is an exception carrying what a caller needs to decide what to do next: the HTTP
status it maps to, the provider's own code, message and request id, and whether retrying can
help. The server turns these into OpenAI-shaped error bodies; Python users catch them directly.

Each class also derives from langchain-core's model error of the same meaning (where the
installed langchain-core has them: `ModelRateLimitError`, `ContextOverflowError`, ...), as
langchain-openai's do, so code written against LangChain's exceptions catches ours.

Providers map their errors with an `ErrorTable`: their own codes first, then the message (for
context-length errors reported without a code), then the HTTP status.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core import exceptions as lc_exceptions

from langchain_chatchat.workers.redact import redact

if TYPE_CHECKING:
    from langchain_core.exceptions import (
        ContextOverflowError,
        ModelAPIError,
        ModelAuthenticationError,
        ModelConnectionError,
        ModelInvalidRequestError,
        ModelNotFoundError,
        ModelPermissionDeniedError,
        ModelRateLimitError,
        ModelTimeoutError,
    )
else:

    def _langchain_error(name: str) -> type[Exception]:
        """langchain-core's model error `name`, or a stand-in where this version lacks it."""
        found = getattr(lc_exceptions, name, None)
        return found if isinstance(found, type) else type(name, (Exception,), {})

    ContextOverflowError = _langchain_error("ContextOverflowError")
    ModelAPIError = _langchain_error("ModelAPIError")
    ModelAuthenticationError = _langchain_error("ModelAuthenticationError")
    ModelConnectionError = _langchain_error("ModelConnectionError")
    ModelInvalidRequestError = _langchain_error("ModelInvalidRequestError")
    ModelNotFoundError = _langchain_error("ModelNotFoundError")
    ModelPermissionDeniedError = _langchain_error("ModelPermissionDeniedError")
    ModelRateLimitError = _langchain_error("ModelRateLimitError")
    ModelTimeoutError = _langchain_error("ModelTimeoutError")


class ChatchatError(Exception):
    """Base of all errors raised by workers.

    `status_code` is the HTTP status the error should surface as; `openai_type` is the
    matching OpenAI error `type`, so the server never has to guess.
    """

    status_code: int = 500
    openai_type: str = "api_error"
    openai_code: str | None = None
    """OpenAI's `code` for this kind of error, shown to HTTP clients in place of the provider's."""
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        message = redact(message)  # upstream text may quote a key: it never travels on
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.code = code
        self.request_id = request_id
        self.param = param
        self.retry_after = retry_after
        if status_code is not None:
            self.status_code = status_code
        if retryable is not None:
            self.retryable = retryable
        self.is_retryable = self.retryable  # langchain-core's name for it

    def __str__(self) -> str:
        parts = [self.message]
        details = ", ".join(
            f"{name}={value}"
            for name, value in (
                ("provider", self.provider),
                ("code", self.code),
                ("status", self.status_code),
                ("request_id", self.request_id),
            )
            if value is not None
        )
        if details:
            parts.append(f"({details})")
        return " ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        """Keep keyword-only attributes through pickling (multiprocessing, LangServe)."""
        return (_rebuild_error, (type(self), self.message, self.__dict__.copy()))


def _rebuild_error(cls: type[ChatchatError], message: str, state: dict[str, Any]) -> ChatchatError:
    error = cls(message)
    error.__dict__.update(state)
    return error


class BadRequestError(ChatchatError, ModelInvalidRequestError):
    """The request is invalid for this provider (bad parameter, bad message order, ...)."""

    status_code = 400
    openai_type = "invalid_request_error"


class ContextLengthError(BadRequestError, ContextOverflowError):
    """The prompt (plus requested output) does not fit the model's context window."""

    openai_code = "context_length_exceeded"


class ContentFilterError(BadRequestError):
    """The provider's safety system rejected the input or output."""

    openai_code = "content_filter"


class AuthenticationError(ChatchatError, ModelAuthenticationError):
    """Missing, wrong or expired credentials (the key itself never appears in the message)."""

    status_code = 401
    openai_type = "authentication_error"


class PermissionDeniedError(AuthenticationError, ModelPermissionDeniedError):
    """Valid credentials without access to this model or API (unpaid account, not enabled)."""

    status_code = 403
    openai_type = "permission_error"


class NotFoundError(ChatchatError, ModelNotFoundError):
    """Unknown model or endpoint."""

    status_code = 404
    openai_type = "not_found_error"


class RateLimitError(ChatchatError, ModelRateLimitError):
    """Throttled by the provider (or by our own queue); worth retrying after a pause."""

    status_code = 429
    openai_type = "rate_limit_error"
    retryable = True


class UpstreamUnavailableError(ChatchatError):
    """The provider failed or could not be reached: the common base of the two cases below."""

    status_code = 502
    openai_type = "api_error"
    retryable = True


class UpstreamConnectionError(UpstreamUnavailableError, ModelConnectionError):
    """The provider could not be reached, or dropped the connection mid-reply."""


class UpstreamServerError(UpstreamUnavailableError, ModelAPIError):
    """The provider answered with a failure of its own (a 5xx, or a reply that makes no sense)."""


class UpstreamTimeoutError(ChatchatError, ModelTimeoutError):
    """The provider did not answer within the configured timeout."""

    status_code = 504
    openai_type = "timeout_error"
    retryable = True


ExceptionTypes = tuple[type[BaseException], ...]


@contextlib.contextmanager
def transport_errors(
    provider: str,
    label: str,
    *,
    timeouts: ExceptionTypes,
    failures: ExceptionTypes,
    malformed: ExceptionTypes,
) -> Iterator[None]:
    """Map an SDK's transport exceptions to typed, retryable errors named after `label`.

    `timeouts` become `UpstreamTimeoutError`, `failures` `UpstreamConnectionError` and
    `malformed` (a body that does not parse) `UpstreamServerError`; our own errors pass through.
    The original exception is not chained: its text may carry a URL or header with a secret.
    """
    try:
        yield
    except ChatchatError:
        raise
    except timeouts as error:
        raise UpstreamTimeoutError(
            f"{label} did not answer in time: {type(error).__name__}", provider=provider
        ) from None
    except failures as error:
        raise UpstreamConnectionError(
            f"{label} connection failed: {type(error).__name__}", provider=provider
        ) from None
    except malformed as error:
        raise UpstreamServerError(
            f"{label} sent a malformed response: {type(error).__name__}", provider=provider
        ) from None


def error_for_status(status: int, message: str, **kwargs: Any) -> ChatchatError:
    """The typed error for an HTTP status when the provider's code says nothing more specific."""
    if status in (400, 422):
        return BadRequestError(message, status_code=400, **kwargs)
    if status == 401:
        return AuthenticationError(message, **kwargs)
    if status in (402, 403):  # 402: payment required, the account must change, not the request
        return PermissionDeniedError(message, status_code=403, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status in (408, 504):
        return UpstreamTimeoutError(message, **kwargs)
    if status == 413:
        return ContextLengthError(message, **kwargs)
    if status == 429:
        return RateLimitError(message, **kwargs)
    if status >= 500:
        return UpstreamServerError(message, status_code=502 if status == 500 else status, **kwargs)
    return BadRequestError(message, status_code=400, **kwargs)


CONTEXT_LENGTH_MESSAGE = re.compile(
    r"context[ _]length|maximum context|context window|token limit|tokens? too long|too many tokens|"
    r"prompt is too long|input (?:token )?length|exceed.{0,40}(?:token|length)|超长|超过.{0,10}(?:上限|长度)",
    re.IGNORECASE,
)
"""How providers word "the prompt is too long" when they send no specific code."""


@dataclass(frozen=True)
class ErrorTable:
    """A provider's error codes (or error types) → typed errors, with the HTTP status as fallback.

    A dotted code ("Throttling.RateQuota", "RateLimitExceeded.EndpointRPMExceeded") also matches
    its first part. `messages` maps message patterns for errors a provider reports without a
    telling code. A code mapped to `BadRequestError` still yields to the more specific content
    filter and context length errors.
    """

    codes: Mapping[str, type[ChatchatError]] = field(default_factory=dict)
    messages: Sequence[tuple[re.Pattern[str], type[ChatchatError]]] = ()

    def classify(
        self, status: int, code: str | None, kind: str | None, message: str
    ) -> type[ChatchatError] | None:
        """The typed error class, or None to decide by `status`."""
        keys = (code, code.split(".")[0] if code else None, kind)
        mapped = next((self.codes[key] for key in keys if key and key in self.codes), None)
        if mapped is not None and mapped is not BadRequestError:
            return mapped
        if "content_filter" in (code, kind):
            return ContentFilterError
        if "context_length_exceeded" in (code, kind) or (
            status in (400, 413, 422) and CONTEXT_LENGTH_MESSAGE.search(message)
        ):
            return ContextLengthError
        for pattern, error_class in self.messages:
            if pattern.search(message):
                return error_class
        return mapped

    def error(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        kind: str | None = None,
        **kwargs: Any,
    ) -> ChatchatError:
        """The typed error for a provider failure answered with HTTP `status`."""
        error_class = self.classify(status, code, kind, message)
        if error_class is None:
            return error_for_status(status, message, code=code or kind, **kwargs)
        return error_class(message, code=code or kind, **kwargs)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The pause a provider asks for (`retry-after-ms`, else `retry-after` in seconds)."""
    try:
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0), ("Retry-After", 1.0)):
            if value := headers.get(name):
                return float(value) * scale
    except ValueError:
        return None
    return None
