"""Model name → what serves it, built from the config.

Every replica of every model is constructed once, when the app is created, so a bad config
fails before the port is bound and no request ever pays for construction. Each name gets a
`ReplicaPool` (least-busy dispatch, limits, queue, health, failover; see `pool.py`) behind a
dispatcher that both protocols call (see `dispatch.py`); fallbacks to other names are
composed on top. `ModelRegistry.aclose` closes every replica's clients at shutdown.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import httpx
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from pydantic import BaseModel, ValidationError

from langchain_chatchat.chat_models.base import ChatchatChatModel, refuse_unknown_options
from langchain_chatchat.providers import get_provider
from langchain_chatchat.server.config import (
    ChatchatConfig,
    ConfigError,
    Kind,
    ModelConfig,
    ReplicaConfig,
    TimeoutConfig,
    describe_validation_error,
    did_you_mean,
)
from langchain_chatchat.server.dispatch import (
    ChatDispatcher,
    EmbeddingsDispatcher,
    chat_usage_counter,
    embedding_usage_counter,
    with_fallbacks,
)
from langchain_chatchat.server.metrics import Metrics
from langchain_chatchat.server.pool import Replica, ReplicaPool
from langchain_chatchat.server.remote import LangServeReplica, public_url
from langchain_chatchat.workers.errors import BadRequestError, ChatchatError, NotFoundError
from langchain_chatchat.workers.transport import HTTPTransport

logger = logging.getLogger("langchain_chatchat.server")

_EXPECTED_TYPES: dict[Kind, type] = {"chat": BaseChatModel, "embeddings": Embeddings}
_ENDPOINTS: dict[Kind, str] = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings"}
_REMOTE_OPENAI_PROVIDER = "openai_compatible"
_LANGSERVE_PARAMS = frozenset({"headers"})
_DEFAULT_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class _Served:
    """A configured model name, ready to call through its dispatcher."""

    name: str
    provider: str
    """The first replica's provider (`owned_by` in /v1/models)."""
    created: int
    pool: ReplicaPool
    runnable: Runnable
    """What LangServe serves (and, for chat, what the OpenAI routes call)."""

    @property
    def model(self) -> Any:
        """The first replica's model: the only one of a plain, replica-less entry."""
        return self.pool.replicas[0].model


@dataclass(frozen=True)
class ServedChat(_Served):
    """A chat model name: its dispatcher and the fallbacks composed into `runnable`."""

    dispatcher: ChatDispatcher
    fallbacks: tuple[ChatDispatcher, ...] = ()
    kind: Literal["chat"] = "chat"

    def check_call_options(self, options: Iterable[str]) -> None:
        """Refuse request options that a replica's (or a fallback's) model does not declare.

        Our own models check again when they build a request; this covers a chat-model class of
        another package, which declares no `call_options` and so takes only the OpenAI-standard
        ones: a request can never reach its settings. A replica whose model forwards the call to
        a model that checks (a Ray deployment) declares `call_options = None`.
        """
        for dispatcher in (self.dispatcher, *self.fallbacks):
            for replica in dispatcher.pool.replicas:
                allowed = getattr(replica.model, "call_options", ChatchatChatModel.call_options)
                if allowed is not None:
                    refuse_unknown_options(options, allowed)

    def bind_tools(self, tools: Sequence[Any], **options: Any) -> Runnable:
        """The chat runnable with `tools` bound on every replica and fallback."""
        return with_fallbacks(
            self.dispatcher.bind_tools(tools, **options),
            [fallback.bind_tools(tools, **options) for fallback in self.fallbacks],
        )


@dataclass(frozen=True)
class ServedEmbeddings(_Served):
    """An embeddings model name."""

    dispatcher: EmbeddingsDispatcher
    kind: Literal["embeddings"] = "embeddings"

    async def embed(self, texts: list[str], dimensions: int | None) -> tuple[list[Any], int]:
        """Vectors and prompt tokens, from one of the replicas."""
        return await self.dispatcher.aembed(texts, dimensions)


ServedModel = ServedChat | ServedEmbeddings


class ModelRegistry:
    """The served models by name."""

    def __init__(self, models: list[ServedModel], metrics: Metrics) -> None:
        self._models = {model.name: model for model in models}
        metrics.watch(model.pool for model in models)

    @classmethod
    def from_config(cls, config: ChatchatConfig, metrics: Metrics | None = None) -> ModelRegistry:
        metrics = metrics or Metrics()
        created = int(time.time())
        built = {
            entry.name: build_model(index, entry, created, metrics)
            for index, entry in enumerate(config.models)
        }
        return cls(
            [_with_fallbacks(built[entry.name], entry, built) for entry in config.models], metrics
        )

    @overload
    def get(self, name: str, kind: Literal["chat"]) -> ServedChat: ...
    @overload
    def get(self, name: str, kind: Literal["embeddings"]) -> ServedEmbeddings: ...
    @overload
    def get(self, name: str, kind: None = None) -> ServedModel: ...
    def get(self, name: str, kind: Kind | None = None) -> ServedModel:
        """The model called `name`; a typed 404 if unknown, a 400 if it is not of `kind`."""
        served = self._models.get(name)
        if served is None:
            raise NotFoundError(
                f"The model '{name}' does not exist", code="model_not_found", param="model"
            )
        if kind is not None and served.kind != kind:
            raise BadRequestError(
                f"The model '{name}' is {'an' if served.kind == 'embeddings' else 'a'}"
                f" {served.kind} model; use {_ENDPOINTS[served.kind]}",
                code="model_not_supported",
                param="model",
            )
        return served

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())

    async def aclose(self) -> None:
        """Close every replica's HTTP clients and SDK sessions (the app's shutdown)."""
        for served in self:
            for replica in served.pool.replicas:
                await _close(replica.model)


def build_model(
    index: int, entry: ModelConfig, created: int, metrics: Metrics | None = None
) -> ServedModel:
    """Construct one entry's replicas; any failure becomes a `ConfigError` naming the entry."""
    label = f'models[{index}] "{entry.name}"'
    stats = (metrics or Metrics()).model(entry.name)
    replicas, providers = [], []
    for position, replica in enumerate(entry.replicas or [ReplicaConfig()]):
        where = f"{label}.replicas[{position}]" if entry.replicas else label
        provider, model, tag = _build_replica(where, entry, replica)
        name = f"{position}:{tag}"
        limit = replica.max_concurrency or entry.max_concurrency
        replicas.append(Replica(position, name, model, limit, stats.replica(name)))
        providers.append(provider)
    pool = ReplicaPool(
        entry.name,
        replicas,
        stats=stats,
        max_queue=entry.max_queue,
        queue_timeout=entry.queue_timeout,
        max_failures=entry.health.max_failures,
        cooldown=entry.health.cooldown,
        observe=(
            chat_usage_counter(stats) if entry.kind == "chat" else embedding_usage_counter(stats)
        ),
    )
    provider = entry.provider or providers[0]
    if entry.kind == "chat":
        chat = ChatDispatcher(pool)
        return ServedChat(entry.name, provider, created, pool, chat, dispatcher=chat)
    embeddings = EmbeddingsDispatcher(pool)
    return ServedEmbeddings(
        entry.name, provider, created, pool, embeddings.as_runnable(), dispatcher=embeddings
    )


def _with_fallbacks(
    served: ServedModel, entry: ModelConfig, built: dict[str, ServedModel]
) -> ServedModel:
    if not entry.fallbacks or not isinstance(served, ServedChat):
        return served  # the config's validation allows fallbacks on chat models only
    fallbacks = tuple(
        fallback.dispatcher
        for fallback in (built[name] for name in entry.fallbacks)
        if isinstance(fallback, ServedChat)
    )
    return dataclasses.replace(
        served, runnable=with_fallbacks(served.dispatcher, fallbacks), fallbacks=fallbacks
    )


def _build_replica(where: str, entry: ModelConfig, replica: ReplicaConfig) -> tuple[str, Any, str]:
    """(provider name, constructed model, label tag) for one replica."""
    if replica.url is not None and replica.protocol == "langserve":
        return "langserve", _langserve_replica(where, entry, replica), public_url(replica.url)
    if replica.url is not None:
        params = {"model": entry.name, **replica.params, "base_url": replica.url}
        model = _construct(where, _REMOTE_OPENAI_PROVIDER, entry.kind, params, entry.timeout)
        return _REMOTE_OPENAI_PROVIDER, model, public_url(replica.url)
    provider = replica.provider or entry.provider
    assert provider is not None  # the config's validation guarantees one
    inherits = get_provider(provider).name == get_provider(entry.provider or provider).name
    params = {**entry.params, **replica.params} if inherits else dict(replica.params)
    return provider, _construct(where, provider, entry.kind, params, entry.timeout), provider


def _construct(
    where: str, provider: str, kind: Kind, params: dict[str, Any], timeout: TimeoutConfig
) -> Any:
    try:
        cls = get_provider(provider).class_for(kind)
    except ImportError as error:
        raise ConfigError(
            f"{where}: provider {provider!r} cannot be imported ({error}); is its extra installed?"
        ) from None
    if unknown := _unknown_params(cls, params):
        known = getattr(cls, "model_fields", {})
        hints = "; ".join(f"{name}{did_you_mean(name, known) or ''}" for name in unknown)
        raise ConfigError(f"{where}.params: {cls.__name__} has no parameter(s) {hints}")
    params = _with_read_timeout(where, cls, params, timeout.read)
    try:
        model = cls(**params)
    except ValidationError as error:
        details = describe_validation_error(error, {})
        raise ConfigError(f"{where}.params: {details}") from None
    except (ChatchatError, TypeError, ValueError) as error:
        message = error.message if isinstance(error, ChatchatError) else str(error)
        raise ConfigError(f"{where}: {message}") from None
    if not isinstance(model, _EXPECTED_TYPES[kind]):
        raise ConfigError(
            f"{where}: {cls.__name__} is not a {_EXPECTED_TYPES[kind].__name__}, "
            f"so it cannot serve kind {kind!r}"
        )
    if timeout.connect is not None:
        transport = getattr(getattr(model, "worker", None), "transport", None)
        if not isinstance(transport, HTTPTransport):
            raise ConfigError(
                f"{where}: timeout.connect is not supported by {cls.__name__}, whose transport"
                " has a single timeout (set timeout.read)"
            )
        transport.connect_timeout = timeout.connect
    return model


def _with_read_timeout(
    where: str, cls: type, params: dict[str, Any], read: float | None
) -> dict[str, Any]:
    """`timeout.read` becomes the model's own `timeout`, unless its params set one."""
    if read is None or {"timeout", "request_timeout"} & params.keys():
        return params
    if "timeout" not in getattr(cls, "model_fields", {}):
        raise ConfigError(f"{where}: timeout.read is not supported by {cls.__name__}")
    return {**params, "timeout": read}


def _langserve_replica(where: str, entry: ModelConfig, replica: ReplicaConfig) -> LangServeReplica:
    if entry.kind != "chat":
        raise ConfigError(f"{where}: LangServe replicas can serve chat models only")
    if unknown := sorted(replica.params.keys() - _LANGSERVE_PARAMS):
        raise ConfigError(
            f"{where}.params: a LangServe replica takes only `headers`, not {', '.join(unknown)}"
        )
    read = entry.timeout.read or _DEFAULT_READ_TIMEOUT
    assert replica.url is not None
    return LangServeReplica(
        replica.url,
        headers=replica.params.get("headers"),
        timeout=httpx.Timeout(read, connect=entry.timeout.connect or read),
    )


async def _close(model: Any) -> None:
    """Close what a replica holds open: its worker's clients, or its own (LangServe)."""
    target = getattr(model, "worker", model)
    try:
        if (aclose := getattr(target, "aclose", None)) is not None:
            await aclose()
        if (close := getattr(target, "close", None)) is not None:
            close()
    except Exception:  # shutdown goes on: one failing client must not keep the others open
        logger.warning("closing %s failed", type(target).__name__, exc_info=True)


def _unknown_params(cls: type, params: dict[str, Any]) -> list[str]:
    """Keys a pydantic model class would silently ignore — almost always typos."""
    if not issubclass(cls, BaseModel) or cls.model_config.get("extra") == "allow":
        return []
    fields = cls.model_fields
    known = set(fields)
    for field in fields.values():
        known.update(
            alias for alias in (field.alias, field.validation_alias) if isinstance(alias, str)
        )
    return sorted(set(params) - known)
