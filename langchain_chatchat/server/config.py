"""The server's configuration: a YAML file (or a dict) with `server:` and `models:` sections.

`${VAR}` / `${VAR:-default}` in any string expand from the environment at load time, so keys
stay out of files. Every problem — invalid YAML, an unknown provider, an unset variable, a bad
field — becomes one `ConfigError` whose message names the offending entry, e.g.
`models[1] "qwen-max".provider: unknown provider 'qwenn'; known providers: qwen`.

The schema (every key but `models[].name` is optional; a plain `{name, provider, params}` entry
is one replica, exactly as before replicas existed)::

    server:
      host: 127.0.0.1            # loopback unless you say otherwise
      port: 20000
      api_keys: [sk-...]         # Bearer keys clients must send (none: open)
      max_body_size: 16777216    # bytes; larger bodies get 413
      cors_origins: []           # browser origins allowed (none: CORS off)
      access_log: true           # one JSON line per request on logger `langchain_chatchat.access`
      metrics: true              # Prometheus text at GET /metrics
      workers: 1                 # gateway processes on the port (`chatchat serve --workers`)
      log_level: info            # uvicorn's and the package's loggers (`--log-level` wins)
      max_header_size: 32768     # bytes of request line + headers; larger heads get 431
      header_timeout: 10         # seconds to send a whole request head; slower clients get 408
      keep_alive_timeout: 5      # seconds an idle kept-alive connection stays open
      max_connections: 2048      # concurrent connections/requests; beyond them 503
    models:
      - name: qwen-plus          # the OpenAI `model` and the LangServe path /qwen-plus
        provider: qwen           # see `chatchat models`; replicas may name their own
        kind: chat               # or embeddings
        params: {model: qwen-plus, api_key: "${DASHSCOPE_API_KEY}"}
        max_concurrency: 8       # requests in flight per replica (default: unlimited)
        max_queue: 100           # requests waiting for a free replica; beyond that 429
        queue_timeout: 30        # seconds a request may wait in the queue before 429
        timeout: {read: 120}     # read = longest silence between chunks, never a cap on a
                                 # whole generation; `connect` too for OpenAI-style providers
                                 # and URLs (the DashScope SDK has a single timeout)
        health: {max_failures: 3, cooldown: 10}   # consecutive failures → out for cooldown s
                                 # (never the last healthy replica)
        fallbacks: [qwen-turbo]  # chat models tried in order when this one is busy or down
        ray:                     # under Ray Serve only: this entry is its own deployment
          num_replicas: 2        # or autoscaling_config: {min_replicas: 1, max_replicas: 8}
          ray_actor_options: {num_cpus: 1, num_gpus: 0}
        replicas:                # several upstreams for one name, least-busy first
          - {}                                       # the entry's own provider and params
          - {params: {api_key: "${KEY_2}"}, max_concurrency: 4}   # same provider, merged params
          - {provider: vllm, params: {model: qwen2.5, base_url: "http://gpu1:8000/v1"}}
          - {url: "http://gpu2:8000/v1", protocol: openai, params: {model: qwen2.5}}
          - {url: "http://other:20000/qwen-plus", protocol: langserve,   # chat models only;
             params: {headers: {Authorization: "Bearer ${OTHER_KEY}"}}}  # messages, no params

A replica using the entry's provider inherits the entry's `params` (its own win); a replica of
another provider or URL does not, so one upstream's key is never sent to another.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from langchain_chatchat.providers import get_provider

Kind = Literal["chat", "embeddings"]

Protocol = Literal["openai", "langserve"]

# Paths the app itself owns; a model with one of these names would shadow them.
RESERVED_NAMES = frozenset({"v1", "health", "ready", "metrics", "docs", "redoc", "openapi.json"})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A configuration problem, with a message fit to show a user as is (no traceback)."""


class ServerSettings(BaseModel):
    """The `server:` section."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    """Loopback by default: binding elsewhere is the user's explicit choice."""
    port: int = Field(default=20000, ge=0, le=65535)
    api_keys: list[str] = Field(default_factory=list, repr=False)
    """When non-empty, every route but /health and /ready needs `Authorization: Bearer <key>`."""
    max_body_size: int = Field(default=16 * 1024 * 1024, ge=1)
    """Largest accepted request body in bytes; bigger ones get 413."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API (CORS is off when empty)."""
    access_log: bool = True
    """Log one JSON line per request (logger `langchain_chatchat.access`, level INFO)."""
    metrics: bool = True
    """Serve Prometheus metrics at GET /metrics (behind `api_keys` like every other route)."""
    workers: int = Field(default=1, ge=1)
    """Gateway processes sharing the port (`chatchat serve --workers`; see server/workers.py)."""
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    """Level of uvicorn's loggers and of the package's own (`langchain_chatchat.*`)."""
    max_header_size: int = Field(default=32 * 1024, ge=1024)
    """Largest request head (request line and headers) in bytes; a bigger one gets 431."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a complete request head; a slower one gets 408."""
    keep_alive_timeout: float = Field(default=5.0, gt=0)
    """Seconds an idle kept-alive connection stays open."""
    max_connections: int | None = Field(default=2048, ge=1)
    """Concurrent connections and requests; beyond them new requests get 503 (None: no cap)."""

    @field_validator("api_keys")
    @classmethod
    def _non_empty_keys(cls, keys: list[str]) -> list[str]:
        if any(not key.strip() for key in keys):
            raise ValueError("API keys must be non-empty strings")
        return keys


class TimeoutConfig(BaseModel):
    """`timeout:` of a model entry, in seconds."""

    model_config = ConfigDict(extra="forbid")

    connect: float | None = Field(default=None, gt=0)
    """Time to open a connection; only httpx-based providers and remote replicas can set it."""
    read: float | None = Field(default=None, gt=0)
    """Longest wait for the next piece of a reply (the provider's `timeout`): a generation that
    keeps streaming is never cut, however long it runs."""


class HealthConfig(BaseModel):
    """`health:` of a model entry: passive health checks from real traffic."""

    model_config = ConfigDict(extra="forbid")

    max_failures: int = Field(default=3, ge=0)
    """Consecutive retryable failures that take a replica out (0: never)."""
    cooldown: float = Field(default=10.0, gt=0)
    """Seconds a failing replica stays out before it is tried again."""


class RayConfig(BaseModel):
    """`ray:` of a model entry: under Ray Serve the entry becomes its own deployment (see
    server/ray.py); everywhere else the section is ignored. Keys follow `serve.deployment`."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int | None = Field(default=None, ge=1)
    autoscaling_config: dict[str, Any] | None = None
    """`min_replicas`, `max_replicas`, `target_ongoing_requests`, ... (Ray Serve's names)."""
    ray_actor_options: dict[str, Any] = Field(default_factory=dict)
    """`num_cpus`, `num_gpus`, `memory`, `resources`, ... of each replica."""
    max_ongoing_requests: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _replicas_or_autoscaling(self) -> RayConfig:
        if self.num_replicas is not None and self.autoscaling_config is not None:
            raise ValueError("give either `num_replicas` or `autoscaling_config`, not both")
        if "runtime_env" in self.ray_actor_options:
            raise ValueError(
                "ray_actor_options.runtime_env is refused: Ray stores it in the cluster;"
                " set provider keys in the workers' environment instead"
            )
        return self


class ReplicaConfig(BaseModel):
    """One `replicas:` item: a provider (with params) or a remote `url` speaking `protocol`."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = None
    """Defaults to the entry's provider (and then inherits the entry's params)."""
    url: str | None = None
    """A remote endpoint: an OpenAI root (`.../v1`) or a LangServe runnable (`.../<name>`)."""
    protocol: Protocol = "openai"
    params: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Provider keyword arguments; for a LangServe URL only `headers`."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Overrides the entry's `max_concurrency` for this replica."""

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, name: str | None) -> str | None:
        return None if name is None else _check_provider(name)

    @model_validator(mode="after")
    def _url_or_provider(self) -> ReplicaConfig:
        if self.url is not None and self.provider is not None:
            raise ValueError("give either `url` (with `protocol`) or `provider`, not both")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("`url` must start with http:// or https://")
        return self


class ModelConfig(BaseModel):
    """One `models:` entry: the name clients use, and how to build the model's replicas."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    """The OpenAI `model` value and the LangServe path `/<name>`."""
    provider: str | None = None
    """Required unless every replica names its own provider or url."""
    kind: Kind = Field(default="chat", validate_default=True)
    params: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Keyword arguments for the provider's class (e.g. `model`, `api_key`, `temperature`)."""
    replicas: list[ReplicaConfig] = Field(default_factory=list)
    """Several upstreams serving this name; none means one, built from `provider`/`params`."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Requests in flight per replica (None: unlimited)."""
    max_queue: int = Field(default=100, ge=0)
    """Requests waiting for a replica slot; one more gets 429 with Retry-After."""
    queue_timeout: float = Field(default=30.0, gt=0)
    """Seconds a request may wait for a slot before it gets 429."""
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    fallbacks: list[str] = Field(default_factory=list)
    """Other chat models' names, tried in order when every replica here failed or was busy."""
    ray: RayConfig | None = None
    """Under Ray Serve: run this entry as its own deployment (replicas, autoscaling, GPUs)."""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_NAMES:
            raise ValueError(f"{name!r} is reserved for the server's own routes")
        return name

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, name: str | None) -> str | None:
        return None if name is None else _check_provider(name)

    @field_validator("kind")
    @classmethod
    def _provider_serves_kind(cls, kind: Kind, info: ValidationInfo) -> Kind:
        name = info.data.get("provider")
        if name is not None and getattr(get_provider(name), kind) is None:
            raise ValueError(f"provider {name!r} has no {kind} models")
        return kind

    @model_validator(mode="after")
    def _replicas_resolve(self) -> ModelConfig:
        if not self.replicas and self.provider is None:
            raise ValueError("`provider` is required (or list `replicas`)")
        for index, replica in enumerate(self.replicas):
            provider = replica.provider or (None if replica.url else self.provider)
            if replica.url is None and provider is None:
                raise ValueError(f"replicas[{index}] needs a `provider` or a `url`")
            if provider is not None and getattr(get_provider(provider), self.kind) is None:
                raise ValueError(
                    f"replicas[{index}]: provider {provider!r} has no {self.kind} models"
                )
        if self.fallbacks and self.kind != "chat":
            raise ValueError("`fallbacks` are only supported for chat models")
        if self.name in self.fallbacks:
            raise ValueError("a model cannot be its own fallback")
        return self


def _check_provider(name: str) -> str:
    try:
        get_provider(name)
    except LookupError as error:
        raise ValueError(str(error)) from None
    return name


class ChatchatConfig(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    models: list[ModelConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ChatchatConfig:
        seen: set[str] = set()
        for index, model in enumerate(self.models):
            if model.name in seen:
                raise ValueError(
                    f'models[{index}] "{model.name}": the name is already used by an earlier model'
                )
            seen.add(model.name)
        kinds = {model.name: model.kind for model in self.models}
        for index, model in enumerate(self.models):
            for name in model.fallbacks:
                if kinds.get(name) != "chat":
                    raise ValueError(
                        f'models[{index}] "{model.name}".fallbacks: {name!r} is not a chat model'
                        " of this config"
                    )
        return self


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | ChatchatConfig,
) -> ChatchatConfig:
    """Load a config from a YAML file path, a dict, or pass a ready `ChatchatConfig` through."""
    if isinstance(source, ChatchatConfig):
        return source
    if isinstance(source, Mapping):
        return _validate(dict(source), origin="config")
    path = Path(source)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the file: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(error)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with `server:` and `models:` sections")
    return _validate(raw, origin=str(path))


def _validate(raw: dict[str, Any], origin: str) -> ChatchatConfig:
    try:
        return ChatchatConfig.model_validate(_expand(raw, raw, ()))
    except ValidationError as error:
        raise ConfigError(f"{origin}: {describe_validation_error(error, raw)}") from None
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None


def _expand(value: Any, root: dict[str, Any], location: tuple[str | int, ...]) -> Any:
    """Expand `${VAR}` / `${VAR:-default}` in every string; an unset variable names its entry."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            resolved = os.environ.get(name) or default
            if resolved is None:
                raise ConfigError(
                    f"{entry_label(location, root)}: environment variable {name} is not set"
                )
            return resolved

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {key: _expand(item, root, (*location, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, root, (*location, index)) for index, item in enumerate(value)]
    return value


def format_location(location: Sequence[str | int]) -> str:
    """`('models', 1, 'params')` → `models[1].params`."""
    label = ""
    for part in location:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label


def entry_label(location: tuple[str | int, ...], raw: Mapping[str, Any]) -> str:
    """Like `format_location`, plus the model's name: `models[1] "qwen-max".params.api_key`."""
    label = format_location(location)
    if len(location) >= 2 and location[0] == "models" and isinstance(location[1], int):
        models = raw.get("models")
        entry = (
            models[location[1]] if isinstance(models, list) and location[1] < len(models) else None
        )
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            head = f"models[{location[1]}]"
            label = f'{head} "{entry["name"]}"{label[len(head) :]}'
    return label


def describe_validation_error(error: ValidationError, raw: Mapping[str, Any]) -> str:
    """Pydantic's errors as `entry: message` pairs, entries named the way the user wrote them."""
    lines = []
    for item in error.errors(include_url=False):
        # Drop validator steps such as "function-after[...]" that pydantic puts in locations.
        location = tuple(
            part for part in item["loc"] if not (isinstance(part, str) and "[" in part)
        )
        message = item["msg"].removeprefix("Value error, ")
        label = entry_label(location, raw)
        lines.append(f"{label}: {message}" if label else message)
    return "; ".join(lines)


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem
