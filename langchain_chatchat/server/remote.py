"""A chat model served by another LangServe app (another chatchat, say), used as a replica.

LangServe's `RemoteRunnable` reports failures as httpx exceptions; they are turned into the
typed, `retryable` errors the pool fails over on, exactly as a provider worker would. The
protocol carries messages only — RemoteRunnable refuses call-time keyword arguments — so a
request with sampling parameters or tools gets a 400 naming them instead of having them
silently dropped. Credentials in `headers` never reach a repr, a log or an error message.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langserve import RemoteRunnable

from langchain_chatchat.workers.errors import (
    BadRequestError,
    ChatchatError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    error_for_status,
)

PROVIDER = "langserve"


class LangServeReplica(Runnable[LanguageModelInput, BaseMessage]):
    """`RemoteRunnable` at `url` with typed errors, closable clients and a key-free repr."""

    def __init__(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: httpx.Timeout
    ) -> None:
        self.url = public_url(url)
        self._remote: RemoteRunnable = RemoteRunnable(
            url,
            headers=dict(headers or {}),
            timeout=timeout,  # type: ignore[arg-type]  # handed to httpx, which takes a Timeout
        )

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        _refuse(kwargs)
        with _typed_errors():
            return self._remote.invoke(input)

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        _refuse(kwargs)
        with _typed_errors():
            return await self._remote.ainvoke(input)

    async def astream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[BaseMessage]:
        _refuse(kwargs)
        with _typed_errors():
            async for chunk in self._remote.astream(input):
                yield chunk

    def bind_tools(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise BadRequestError(
            "tools cannot be sent to this model: one of its replicas is a LangServe endpoint",
            param="tools",
            code="unsupported_parameter",
        )

    def close(self) -> None:
        self._remote.sync_client.close()

    async def aclose(self) -> None:
        await self._remote.async_client.aclose()

    def __repr__(self) -> str:
        return f"LangServeReplica({self.url!r})"


def public_url(url: str) -> str:
    """`url` without user info, query or fragment: safe for labels, logs and reprs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _refuse(kwargs: dict[str, Any]) -> None:
    if kwargs:
        names = ", ".join(sorted(kwargs))
        raise BadRequestError(
            f"this model's LangServe replica takes messages only, not: {names}",
            param=next(iter(sorted(kwargs))),
            code="unsupported_parameter",
        )


@contextlib.contextmanager
def _typed_errors() -> Iterator[None]:
    """httpx failures → typed errors; the messages name no URL (it may carry a key)."""
    try:
        yield
    except ChatchatError:
        raise
    except httpx.HTTPStatusError as error:
        status = error.response.status_code
        raise error_for_status(
            status,
            f"the LangServe replica answered HTTP {status}",
            provider=PROVIDER,
            retry_after=_retry_after(error.response.headers),
        ) from None
    except httpx.TimeoutException as error:
        raise UpstreamTimeoutError(
            f"the LangServe replica did not answer in time ({type(error).__name__})",
            provider=PROVIDER,
        ) from None
    except httpx.TransportError as error:
        raise UpstreamUnavailableError(
            f"the LangServe replica could not be reached ({type(error).__name__})",
            provider=PROVIDER,
        ) from None


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None
