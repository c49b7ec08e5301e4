"""One typed error hierarchy for every provider.

Chatchat 0.2 turned provider failures into answer text; here every failure is an exception
that carries what a caller needs to decide what to do next: the HTTP status it maps to, the
provider's own code, message and request id, and whether retrying can help. The server turns
these into OpenAI-shaped error bodies; Python users catch them directly.
"""

from __future__ import annotations

from langchain_chatchat.workers.redact import redact


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

    def __reduce__(
        self,
    ):  # keep keyword-only attributes through pickling (multiprocessing, LangServe)
        return (_rebuild_error, (type(self), self.message, self.__dict__.copy()))


def _rebuild_error(cls: type[ChatchatError], message: str, state: dict) -> ChatchatError:
    error = cls(message)
    error.__dict__.update(state)
    return error


class BadRequestError(ChatchatError):
    """The request is invalid for this provider (bad parameter, bad message order, ...)."""

    status_code = 400
    openai_type = "invalid_request_error"


class ContextLengthError(BadRequestError):
    """The prompt (plus requested output) does not fit the model's context window."""

    openai_code = "context_length_exceeded"


class ContentFilterError(BadRequestError):
    """The provider's safety system rejected the input or output."""

    openai_code = "content_filter"


class AuthenticationError(ChatchatError):
    """Missing, wrong or expired credentials (the key itself never appears in the message)."""

    status_code = 401
    openai_type = "authentication_error"


class PermissionDeniedError(AuthenticationError):
    """Valid credentials without access to this model or API (unpaid account, not enabled)."""

    status_code = 403
    openai_type = "permission_error"


class NotFoundError(ChatchatError):
    """Unknown model or endpoint."""

    status_code = 404
    openai_type = "not_found_error"


class RateLimitError(ChatchatError):
    """Throttled by the provider (or by our own queue); worth retrying after a pause."""

    status_code = 429
    openai_type = "rate_limit_error"
    retryable = True


class UpstreamUnavailableError(ChatchatError):
    """The provider failed or could not be reached (5xx, connection refused or dropped)."""

    status_code = 502
    openai_type = "api_error"
    retryable = True


class UpstreamTimeoutError(ChatchatError):
    """The provider did not answer within the configured timeout."""

    status_code = 504
    openai_type = "timeout_error"
    retryable = True


def error_for_status(status: int, message: str, **kwargs) -> ChatchatError:
    """The typed error for an HTTP status when the provider's code says nothing more specific."""
    if status == 400 or status == 422:
        return BadRequestError(message, status_code=400, **kwargs)
    if status == 401:
        return AuthenticationError(message, **kwargs)
    if status == 403:
        return PermissionDeniedError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status == 408:
        return UpstreamTimeoutError(message, **kwargs)
    if status == 413:
        return ContextLengthError(message, **kwargs)
    if status == 429:
        return RateLimitError(message, **kwargs)
    if status == 504:
        return UpstreamTimeoutError(message, **kwargs)
    if status >= 500:
        return UpstreamUnavailableError(
            message, status_code=502 if status == 500 else status, **kwargs
        )
    return BadRequestError(message, status_code=400, **kwargs)
