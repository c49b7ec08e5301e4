"""Prometheus metrics for one app, served as text at GET /metrics.

Each app has its own `CollectorRegistry`, so two apps in one process (tests, a user's own
server) never collide. The hot path only increments counters whose label children were
bound once: per replica when the registry is built, per route on first use. In-flight,
queued and health gauges cost nothing per request: a collector reads the pools when scraped.

    chatchat_http_requests_total{method, route, status}
    chatchat_http_request_duration_seconds{method, route}        (histogram, until the last byte)
    chatchat_upstream_requests_total{model, replica, outcome}    (ok | error | cancelled)
    chatchat_upstream_errors_total{model, replica, error}        (the typed error's class)
    chatchat_rejected_requests_total{model, reason}              (queue_full | queue_timeout)
    chatchat_time_to_first_chunk_seconds{model}                   (histogram, streams)
    chatchat_tokens_total{model, type}                           (input | output)
    chatchat_replica_in_flight{model, replica}
    chatchat_replica_healthy{model, replica}                     (0 while cooling down)
    chatchat_model_queued{model}                                 (waiting for any replica)

Several processes (`chatchat serve --workers N`) report as one server through prometheus_client's
multiprocess mode: the parent points `PROMETHEUS_MULTIPROC_DIR` at a fresh private directory
before the gateways start, every value then lives in a memory-mapped file per process, and a
scrape, whichever gateway answers it, merges the files of all of them. Counters and histograms
are summed (a gateway that died keeps its counts); in-flight and queued are summed over the
live gateways; `chatchat_replica_healthy` gains a `pid` label, one series per live gateway,
because each learns a replica's health by itself and a sum would mean nothing. The pools'
gauges cannot be read across processes at scrape time, so each gateway writes its own every
second and just before a scrape it answers: another gateway's may be up to a second old. The
files carry no `_created` series. The mode is decided when prometheus_client is first imported,
so it holds for every app of the process: two apps in one process would share the files, which
is why only the gateway processes (one app each) run in it. A single process never does: its
values stay in memory, each app with its own registry, and no update touches a file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

if TYPE_CHECKING:
    from langchain_chatchat.server.pool import ReplicaPool

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_OUTCOMES = ("ok", "error", "cancelled")
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_FIRST_CHUNK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
SHARED_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's multiprocess switch: the directory of every process's value files."""
PUBLISH_INTERVAL = 1.0
"""Seconds between two writes of a gateway's pool gauges in multiprocess mode."""


def shared_dir() -> str | None:
    """The directory this process's metric values live in, or None when they are in memory.

    prometheus_client picks file-backed values at import when `PROMETHEUS_MULTIPROC_DIR` is set;
    a variable set later changes nothing, so both must hold."""
    path = os.environ.get(SHARED_DIR_ENV)
    return path if path and values.ValueClass is not values.MutexValue else None


class Metrics:
    """Every metric of one app, and the label children bound for the hot path."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # in multiprocess mode, scrapes read the files
        self._shared_dir = shared_dir()
        self._exposed = self.registry
        self._publish: Callable[[], None] | None = None
        if self._shared_dir is not None:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=self._shared_dir)
        self._http_requests = Counter(
            "chatchat_http_requests",
            "HTTP requests, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._http_seconds = Histogram(
            "chatchat_http_request_duration_seconds",
            "Time from request to the response's last byte (a whole stream).",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_requests = Counter(
            "chatchat_upstream_requests",
            "Calls to a model replica, by outcome (cancelled: the client left).",
            ["model", "replica", "outcome"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "chatchat_upstream_errors",
            "Failed calls to a model replica, by error type.",
            ["model", "replica", "error"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "chatchat_rejected_requests",
            "Requests refused before reaching any replica, by reason.",
            ["model", "reason"],
            registry=self.registry,
        )
        self.first_chunk = Histogram(
            "chatchat_time_to_first_chunk_seconds",
            "Time until a streamed reply's first chunk, queueing and failover included.",
            ["model"],
            buckets=_FIRST_CHUNK_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "chatchat_tokens",
            "Tokens reported by the models.",
            ["model", "type"],
            registry=self.registry,
        )
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.routes = RouteLabels()

    def model(self, name: str) -> ModelStats:
        return ModelStats(self, name)

    def watch(self, pools: Iterable[ReplicaPool]) -> None:
        """Report the pools' in-flight, queued and health gauges at each scrape."""
        if self._shared_dir is None:
            self.registry.register(_PoolCollector(tuple(pools)))
            return
        gauges = _PublishedPoolGauges(tuple(pools), self.registry)
        gauges.start(PUBLISH_INTERVAL)
        self._publish = gauges.publish

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self._http_requests.labels(method, route, str(status)),
                self._http_seconds.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        if self._publish is not None:
            self._publish()  # this process's gauges as of now
        return generate_latest(self._exposed)


class RouteLabels:
    """The `route` label of a request: its route's template, with served model names folded
    into `{model}` (`/{model}/invoke`), so the label set stays small and names no model.

    Requests routed by FastAPI carry their route; the rest (static mounts, and answers given by
    a middleware before routing, such as 401 or 413) are matched against the app's routes here.
    Only a path that matches no route is `unmatched`.
    """

    def __init__(self) -> None:
        self._routes: Sequence[BaseRoute] = ()
        self._model_prefixes: tuple[str, ...] = ()
        self._templates: dict[str, str] = {}

    def bind(self, routes: Sequence[BaseRoute], models: Iterable[str]) -> None:
        """Called once the app has all its routes."""
        self._routes = tuple(_flatten(routes))
        self._model_prefixes = tuple(f"/{name}/" for name in models)
        self._templates.clear()

    def label(self, scope: Scope, root_path: str) -> str:
        """`root_path`: the scope's before routing (a mount changes it)."""
        route = scope.get("route")
        path = _template(route) if route is not None else self._match(scope, root_path)
        template = self._templates.get(path)
        if template is None:
            template = self._templates[path] = self._fold_model(path)
        return template

    def _match(self, scope: Scope, root_path: str) -> str:
        probe = {**scope, "root_path": root_path}
        for route in self._routes:
            match, _ = route.matches(probe)
            if match is not Match.NONE:
                return _template(route)
        return "unmatched"

    def _fold_model(self, path: str) -> str:
        for prefix in self._model_prefixes:
            if path.startswith(prefix):
                return "/{model}/" + path[len(prefix) :]
        return path


def _template(route: BaseRoute) -> str:
    path: str = getattr(route, "path", "unmatched")
    return f"{path}/{{path}}" if isinstance(route, Mount) else path


def _flatten(routes: Iterable[Any]) -> Iterator[BaseRoute]:
    """Routes with a path; FastAPI may keep an included router (ours never have a prefix) as
    one entry holding the router it wraps."""
    for route in routes:
        if isinstance(getattr(route, "path", None), str):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from _flatten(router.routes)


class ModelStats:
    """One model name's counters."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._metrics = metrics
        self.model = model
        self.first_item = metrics.first_chunk.labels(model)
        self._input_tokens = metrics.tokens.labels(model, "input")
        self._output_tokens = metrics.tokens.labels(model, "output")

    def replica(self, label: str) -> ReplicaStats:
        return ReplicaStats(self._metrics, self.model, label)

    def rejected(self, reason: str) -> Counter:
        return self._metrics.rejected.labels(self.model, reason)

    def count_tokens(self, input_tokens: int, output_tokens: int) -> None:
        if input_tokens:
            self._input_tokens.inc(input_tokens)
        if output_tokens:
            self._output_tokens.inc(output_tokens)


class ReplicaStats:
    """One replica's counters, the per-request ones bound in advance."""

    __slots__ = ("_errors", "_labels", "_outcomes")

    def __init__(self, metrics: Metrics, model: str, replica: str) -> None:
        self._labels = (model, replica)
        self._outcomes = {
            outcome: metrics.upstream_requests.labels(model, replica, outcome)
            for outcome in _OUTCOMES
        }
        self._errors = metrics.upstream_errors

    def outcome(self, name: str) -> Counter:
        return self._outcomes[name]

    def error(self, kind: str) -> Counter:
        return self._errors.labels(*self._labels, kind)


_IN_FLIGHT = ("chatchat_replica_in_flight", "Requests running on a replica.")
_HEALTHY = (
    "chatchat_replica_healthy",
    "1 when a replica takes traffic, 0 while it cools down after failures.",
)
_QUEUED = ("chatchat_model_queued", "Requests waiting for a free replica slot.")
_REPLICA_LABELS = ("model", "replica")


def _readings(
    pools: tuple[ReplicaPool, ...],
) -> Iterator[tuple[tuple[str, str], tuple[str, ...], float]]:
    """(gauge, label values, value) of every pool gauge now."""
    now = time.monotonic()
    for pool in pools:
        yield _QUEUED, (pool.name,), pool.queued
        for replica in pool.replicas:
            labels = (pool.name, replica.label)
            yield _IN_FLIGHT, labels, replica.in_flight
            yield _HEALTHY, labels, float(replica.healthy(now))


class _PoolCollector(Collector):
    """Gauges read from the pools at scrape time (one process)."""

    def __init__(self, pools: tuple[ReplicaPool, ...]) -> None:
        self._pools = pools

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        families = {
            _IN_FLIGHT: GaugeMetricFamily(*_IN_FLIGHT, labels=_REPLICA_LABELS),
            _HEALTHY: GaugeMetricFamily(*_HEALTHY, labels=_REPLICA_LABELS),
            _QUEUED: GaugeMetricFamily(*_QUEUED, labels=["model"]),
        }
        for gauge, labels, value in _readings(self._pools):
            families[gauge].add_metric(labels, value)
        yield from families.values()


class _PublishedPoolGauges:
    """The pool gauges in multiprocess mode: written to this process's files by `publish`.

    In-flight and queued are summed over the live processes (`livesum`), health is one series
    per live process (`liveall`, labelled `pid`); a dead process's series leave with it
    (`mark_process_dead`, called by the parent)."""

    def __init__(self, pools: tuple[ReplicaPool, ...], registry: CollectorRegistry) -> None:
        self._pools = pools
        self._gauges = {
            _IN_FLIGHT: Gauge(
                *_IN_FLIGHT, _REPLICA_LABELS, registry=registry, multiprocess_mode="livesum"
            ),
            _HEALTHY: Gauge(
                *_HEALTHY, _REPLICA_LABELS, registry=registry, multiprocess_mode="liveall"
            ),
            _QUEUED: Gauge(*_QUEUED, ["model"], registry=registry, multiprocess_mode="livesum"),
        }
        self._children: dict[tuple[tuple[str, str], tuple[str, ...]], Gauge] = {}
        self.publish()

    def publish(self) -> None:
        for gauge, labels, value in _readings(self._pools):
            child = self._children.get((gauge, labels))
            if child is None:
                child = self._children[gauge, labels] = self._gauges[gauge].labels(*labels)
            child.set(value)

    def start(self, interval: float) -> None:
        """Publish every `interval` seconds, in a daemon thread, for the life of the process
        (the pools' counts are plain ints and a deque's length: safe to read from a thread)."""

        def run() -> None:
            while True:
                time.sleep(interval)
                self.publish()

        threading.Thread(target=run, name="chatchat-pool-gauges", daemon=True).start()
