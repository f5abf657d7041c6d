"""Prometheus metrics, read at scrape time from what the runtime already counts.

    metrics = Metrics()                 # a registry of its own, not prometheus_client's global
    metrics.add_controller(controller)  # workqueue, reconciles, reflector and cache
    metrics.add_client(client)          # one request hook: rest_client_* metrics
    body = metrics.exposition()         # prometheus_client.generate_latest(registry)

Nothing here runs per event. The workqueue's numbers come from the Rust queue
(`WorkQueue.metrics(now)`), the reflector's from the attributes it keeps, the
reconciles' from `Controller.stats` (observe/stats.py): each collector reads them when
`/metrics` is scraped. Names and labels are client-go's and controller-runtime's:

    workqueue_depth, workqueue_adds_total, workqueue_retries_total,
    workqueue_queue_duration_seconds, workqueue_work_duration_seconds,
    workqueue_unfinished_work_seconds, workqueue_longest_running_processor_seconds  {name}
    controller_runtime_reconcile_total{controller,result}, ..._reconcile_errors_total,
    controller_runtime_reconcile_time_seconds, ..._max_concurrent_reconciles,
    controller_runtime_active_workers  {controller}
    leader_election_master_status{name}  (1 while leading, 0 while following)
    rest_client_requests_total{code,method,host}, rest_client_request_duration_seconds{verb,host}
    trio_controller_reflector_{relists,watch_restarts}_total{name},
    trio_controller_reflector_events_total{name,type}, trio_controller_cache_objects{name},
    trio_controller_reflector_last_event_age_seconds{name}

The Rust queue counts its two durations per bucket of controller-runtime's
`ExponentialBuckets(10e-9, 10, 12)` (`WORKQUEUE_BUCKETS`); the collector makes them
cumulative at scrape time.

Collectors call `trio.current_time()`: scrape from the Trio thread (observe/serving.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import trio
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from trio_controller._native import WORKQUEUE_BUCKETS
from trio_controller.observe.stats import (
    REQUEST_DURATION_BUCKETS,
    Histogram,
    ReconcileStats,
    cumulative_buckets,
)

if TYPE_CHECKING:
    from trio_controller.cache.reflector import Reflector
    from trio_controller.runtime.controller import Controller
    from trio_controller.runtime.webhooks import WebhookServer
    from trio_controller.runtime.webhooks.stats import WebhookStats
    from trio_controller.runtime.workqueue import WorkQueue
    from trio_controller.transport.client import Client

__all__ = [
    "CONTENT_TYPE_LATEST",
    "EVENT_TYPES",
    "RECONCILE_RESULTS",
    "LeaderElectionCollector",
    "Metrics",
    "ReconcileCollector",
    "ReflectorCollector",
    "RestClientCollector",
    "WebhookCollector",
    "WorkQueueCollector",
    "new_registry",
]

RECONCILE_RESULTS = ("success", "error", "requeue", "requeue_after")
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")


def new_registry(*, process: bool = True) -> CollectorRegistry:
    """A registry of our own; with `process`, the usual process_* and python_* metrics."""
    registry = CollectorRegistry()
    if process:
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    return registry


def _buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Counts per bucket (a `Histogram`'s, or the native queue's) as Prometheus buckets."""
    return [(floatToGoString(le), float(n)) for le, n in cumulative_buckets(bounds, counts)]


class WorkQueueCollector(Collector):
    """client-go's workqueue metrics for each queue added, label `name`."""

    def __init__(self) -> None:
        self._queues: list[tuple[str, WorkQueue]] = []

    def add(self, name: str, queue: WorkQueue) -> None:
        self._queues.append((name, queue))

    def collect(self) -> Iterator[Metric]:
        labels = ["name"]
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of workqueue", labels=labels)
        adds = CounterMetricFamily(
            "workqueue_adds_total", "Total number of adds handled by workqueue", labels=labels
        )
        retries = CounterMetricFamily(
            "workqueue_retries_total", "Total number of retries handled by workqueue", labels=labels
        )
        queued = HistogramMetricFamily(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            labels=labels,
        )
        work = HistogramMetricFamily(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            labels=labels,
        )
        unfinished = GaugeMetricFamily(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been "
            "observed by work_duration. Large values indicate stuck threads.",
            labels=labels,
        )
        longest = GaugeMetricFamily(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            labels=labels,
        )
        now = trio.current_time() if self._queues else 0.0
        for name, queue in self._queues:
            m = queue.native.metrics(now)
            depth.add_metric([name], m["depth"])
            adds.add_metric([name], m["adds"])
            retries.add_metric([name], m["retries"])
            queued_buckets = _buckets(WORKQUEUE_BUCKETS, m["queue_latency_buckets"])
            queued.add_metric([name], queued_buckets, m["queue_latency_sum"])
            work.add_metric(
                [name],
                _buckets(WORKQUEUE_BUCKETS, m["work_duration_buckets"]),
                m["work_duration_sum"],
            )
            unfinished.add_metric([name], m["unfinished_work_seconds"])
            longest.add_metric([name], m["longest_running_processor_seconds"])
        yield from (depth, adds, retries, queued, work, unfinished, longest)


class ReconcileCollector(Collector):
    """controller-runtime's reconcile metrics for each controller added, label `controller`."""

    def __init__(self) -> None:
        self._controllers: list[tuple[str, ReconcileStats, int, Callable[[], int]]] = []

    def add(
        self,
        name: str,
        stats: ReconcileStats,
        workers: int,
        active: Callable[[], int] = lambda: 0,
    ) -> None:
        """Report `stats` as controller `name` with `workers` workers, `active()` of them
        busy now."""
        self._controllers.append((name, stats, workers, active))

    def collect(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller",
            labels=["controller", "result"],
        )
        errors = CounterMetricFamily(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller",
            labels=["controller"],
        )
        time = HistogramMetricFamily(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            labels=["controller"],
        )
        workers = GaugeMetricFamily(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            labels=["controller"],
        )
        active_workers = GaugeMetricFamily(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            labels=["controller"],
        )
        for name, stats, n, active in self._controllers:
            counts = {
                "success": stats.successes,
                "error": stats.errors,
                "requeue": stats.requeues,
                "requeue_after": stats.requeues_after,
            }
            for result in RECONCILE_RESULTS:
                total.add_metric([name, result], counts.get(result, 0))
            errors.add_metric([name], stats.errors)
            time.add_metric([name], _buckets(stats.time.bounds, stats.time.counts), stats.time.sum)
            workers.add_metric([name], n)
            active_workers.add_metric([name], active())
        yield from (total, errors, time, workers, active_workers)


class ReflectorCollector(Collector):
    """Relists, watch restarts, events by type, cache size and event age per reflector."""

    def __init__(self) -> None:
        self._reflectors: list[tuple[str, Reflector]] = []

    def add(self, name: str, reflector: Reflector) -> None:
        self._reflectors.append((name, reflector))

    def collect(self) -> Iterator[Metric]:
        labels = ["name"]
        relists = CounterMetricFamily(
            "trio_controller_reflector_relists_total",
            "Times the cache was replaced by a (streaming) list, the first sync included",
            labels=labels,
        )
        restarts = CounterMetricFamily(
            "trio_controller_reflector_watch_restarts_total",
            "Watches started after the first one",
            labels=labels,
        )
        events = CounterMetricFamily(
            "trio_controller_reflector_events_total",
            "Watch events received, by type",
            labels=["name", "type"],
        )
        objects = GaugeMetricFamily(
            "trio_controller_cache_objects", "Objects in the cache", labels=labels
        )
        age = GaugeMetricFamily(
            "trio_controller_reflector_last_event_age_seconds",
            "Seconds since the last watch event or bookmark (absent before the first)",
            labels=labels,
        )
        now = trio.current_time() if self._reflectors else 0.0
        for name, reflector in self._reflectors:
            relists.add_metric([name], reflector.relists)
            restarts.add_metric([name], reflector.watch_restarts)
            counts = reflector.counts()
            for kind in EVENT_TYPES:
                events.add_metric([name, kind], counts.get(kind, 0))
            objects.add_metric([name], len(reflector.store))
            if reflector.last_event_at is not None:
                age.add_metric([name], max(0.0, now - reflector.last_event_at))
        yield from (relists, restarts, events, objects, age)


class LeaderElectionCollector(Collector):
    """client-go's `leader_election_master_status{name}`: 1 while this replica leads the
    Lease `name`, 0 while it follows."""

    def __init__(self) -> None:
        self._leases: list[tuple[str, Callable[[], bool]]] = []

    def add(self, name: str, is_leader: Callable[[], bool]) -> None:
        self._leases.append((name, is_leader))

    def collect(self) -> Iterator[Metric]:
        status = GaugeMetricFamily(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
            "backup, 1 indicates master. 'name' is the string used to identify the lease.",
            labels=["name"],
        )
        for name, is_leader in self._leases:
            status.add_metric([name], 1 if is_leader() else 0)
        yield status


class RestClientCollector(Collector):
    """client-go's rest_client_* metrics, fed by `Client.add_request_hook(collector.hook)`."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, str], int] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}

    def hook_for(self, client: Client) -> Callable[[str, str, int | None, float], None]:
        """A request hook that counts `client`'s requests under its host."""
        host = urlsplit(client.server).netloc or client.server

        def hook(method: str, path: str, status: int | None, seconds: float) -> None:
            code = "<error>" if status is None else str(status)
            key = (code, method, host)
            self._requests[key] = self._requests.get(key, 0) + 1
            duration = self._durations.get((method, host))
            if duration is None:
                duration = self._durations[method, host] = Histogram(REQUEST_DURATION_BUCKETS)
            duration.observe(seconds)

        return hook

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "rest_client_requests_total",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            labels=["code", "method", "host"],
        )
        for labels, n in self._requests.items():
            requests.add_metric(list(labels), n)
        durations = HistogramMetricFamily(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            labels=["verb", "host"],
        )
        for labels, h in self._durations.items():
            durations.add_metric(list(labels), _buckets(h.bounds, h.counts), h.sum)
        yield from (requests, durations)


class Metrics:
    """The metrics of one process: a registry of its own and our collectors in it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self.workqueues = WorkQueueCollector()
        self.reconciles = ReconcileCollector()
        self.reflectors = ReflectorCollector()
        self.rest_client = RestClientCollector()
        self.leader_election = LeaderElectionCollector()
        self.reconcile_causes = ReconcileCauseCollector()
        for collector in (
            self.workqueues,
            self.reconciles,
            self.reflectors,
            self.rest_client,
            self.leader_election,
            self.reconcile_causes,
        ):
            self.registry.register(collector)

    def add_controller(self, controller: Controller) -> None:
        """Its workqueue, reconciles and reflector, labelled with its lower-case name.

        Active workers are the keys being reconciled, at most `workers`: exact for an
        async reconcile (a worker holds one key), for a batched plain one an upper bound
        (a worker holding a batch counts once per key, up to `workers`)."""
        name = controller.name.lower()
        queue, workers = controller.queue, controller.options.workers
        self.workqueues.add(name, queue)
        self.reconciles.add(
            name,
            controller.stats,
            workers,
            lambda: min(workers, queue.native.processing()),
        )
        self.reflectors.add(name, controller.reflector)
        self.reconcile_causes.add(name, queue)

    def add_webhooks(self, server: WebhookServer) -> None:
        """controller-runtime's `controller_runtime_webhook_*` series of `server`."""
        self.registry.register(WebhookCollector(server.stats))

    def add_leader_election(self, name: str, is_leader: Callable[[], bool]) -> None:
        """`leader_election_master_status{name}` from `is_leader()`."""
        self.leader_election.add(name, is_leader)

    def add_client(self, client: Client) -> None:
        """Count every request and watch opening of `client`."""
        client.add_request_hook(self.rest_client.hook_for(client))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (`CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


class ReconcileCauseCollector(Collector):
    """`controller_runtime_reconcile_causes_total{controller,cause}`: the causes of every
    key handed to a reconcile, counted in the Rust queue (`WorkQueue.cause_totals`); a
    key queued for several causes since its previous reconcile counts each of them.

    Register it with `registry.register(collector)` and `add(name, controller.queue)`.
    """

    def __init__(self) -> None:
        self._queues: list[tuple[str, WorkQueue]] = []

    def add(self, name: str, queue: WorkQueue) -> None:
        self._queues.append((name, queue))

    def collect(self) -> Iterator[Metric]:
        causes = CounterMetricFamily(
            "controller_runtime_reconcile_causes",
            "Total number of causes of reconciliations per controller and cause",
            labels=["controller", "cause"],
        )
        for name, queue in self._queues:
            for cause, n in queue.native.cause_totals().items():
                causes.add_metric([name, cause], n)
        yield causes


class WebhookCollector(Collector):
    """controller-runtime's webhook metrics from a webhook server's `WebhookStats`:
    requests by path and HTTP code, latency and requests in flight per path.

        registry.register(WebhookCollector(server.stats))
    """

    def __init__(self, stats: WebhookStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "controller_runtime_webhook_requests_total",
            "Total number of admission requests by HTTP status code.",
            labels=["webhook", "code"],
        )
        for (webhook, code), n in sorted(self.stats.requests.items()):
            requests.add_metric([webhook, code], n)
        latency = HistogramMetricFamily(
            "controller_runtime_webhook_latency_seconds",
            "Histogram of the latency of processing admission requests",
            labels=["webhook"],
        )
        for webhook, h in sorted(self.stats.latency.items()):
            latency.add_metric([webhook], _buckets(h.bounds, h.counts), h.sum)
        in_flight = GaugeMetricFamily(
            "controller_runtime_webhook_requests_in_flight",
            "Current number of admission requests being served.",
            labels=["webhook"],
        )
        for webhook, n in sorted(self.stats.in_flight.items()):
            in_flight.add_metric([webhook], n)
        yield from (requests, latency, in_flight)
