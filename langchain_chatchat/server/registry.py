"""Model name → the constructed object that serves it (the old FastChat controller's job).

Every model is built once, when the app is created, so a bad config fails before the port is
bound and no request ever pays for construction. Both protocols ask `get()` for a model by
name and call what they get; that call is the seam where replicas, least-busy dispatch and
failover will go, without the routers changing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from pydantic import ValidationError

from langchain_chatchat.providers import get_provider
from langchain_chatchat.server.config import (
    ChatchatConfig,
    ConfigError,
    Kind,
    ModelConfig,
    describe_validation_error,
)
from langchain_chatchat.workers.errors import BadRequestError, ChatchatError, NotFoundError

_EXPECTED_TYPES: dict[Kind, type] = {"chat": BaseChatModel, "embeddings": Embeddings}
_ENDPOINTS: dict[Kind, str] = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings"}


@dataclass(frozen=True)
class ServedModel:
    """A configured model, ready to call: a `BaseChatModel` for chat, an `Embeddings` otherwise."""

    name: str
    kind: Kind
    provider: str
    model: Any
    created: int


class ModelRegistry:
    """The served models by name."""

    def __init__(self, models: list[ServedModel]) -> None:
        self._models = {model.name: model for model in models}

    @classmethod
    def from_config(cls, config: ChatchatConfig) -> ModelRegistry:
        created = int(time.time())
        return cls(
            [build_model(index, entry, created) for index, entry in enumerate(config.models)]
        )

    def get(self, name: str, kind: Kind | None = None) -> ServedModel:
        """The model called `name`; a typed 404 if unknown, a 400 if it is not of `kind`."""
        served = self._models.get(name)
        if served is None:
            raise NotFoundError(
                f"The model '{name}' does not exist", code="model_not_found", param="model"
            )
        if kind is not None and served.kind != kind:
            raise BadRequestError(
                f"The model '{name}' is a {served.kind} model; use {_ENDPOINTS[served.kind]}",
                code="model_not_supported",
                param="model",
            )
        return served

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())


def build_model(index: int, entry: ModelConfig, created: int) -> ServedModel:
    """Construct one configured model; any failure becomes a `ConfigError` naming the entry."""
    label = f'models[{index}] "{entry.name}"'
    try:
        cls = get_provider(entry.provider).class_for(entry.kind)
    except ImportError as error:
        raise ConfigError(
            f"{label}: provider {entry.provider!r} cannot be imported ({error});"
            " is its extra installed?"
        ) from None
    if unknown := _unknown_params(cls, entry.params):
        raise ConfigError(
            f"{label}.params: {cls.__name__} has no parameter(s) {', '.join(unknown)}"
        )
    try:
        model = cls(**entry.params)
    except ValidationError as error:
        details = describe_validation_error(error, {})
        raise ConfigError(f"{label}.params: {details}") from None
    except (ChatchatError, TypeError, ValueError) as error:
        message = error.message if isinstance(error, ChatchatError) else str(error)
        raise ConfigError(f"{label}: {message}") from None
    if not isinstance(model, _EXPECTED_TYPES[entry.kind]):
        raise ConfigError(
            f"{label}: {cls.__name__} is not a {_EXPECTED_TYPES[entry.kind].__name__}, "
            f"so it cannot serve kind {entry.kind!r}"
        )
    return ServedModel(
        name=entry.name, kind=entry.kind, provider=entry.provider, model=model, created=created
    )


def _unknown_params(cls: type, params: dict[str, Any]) -> list[str]:
    """Keys a pydantic model class would silently ignore — almost always typos."""
    fields = getattr(cls, "model_fields", None)
    if fields is None or cls.model_config.get("extra") == "allow":  # type: ignore[attr-defined]
        return []
    known = set(fields)
    for field in fields.values():
        known.update(
            alias for alias in (field.alias, field.validation_alias) if isinstance(alias, str)
        )
    return sorted(set(params) - known)
