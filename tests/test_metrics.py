"""Prometheus metrics: names, labels and values as client-go and controller-runtime expose
them, read at scrape time from the runtime's own counters, and served over HTTP."""

from __future__ import annotations

import math
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families
from streamserver import Reply, open_stream_server

from trio_controller._native import InformerCore, Store
from trio_controller.config import ClusterConfig
from trio_controller.errors import ConnectionFailed, ServerError, TrioControllerError
from trio_controller.observe.metrics import Metrics, new_registry
from trio_controller.observe.serving import Response, parse_bind_address, serve_http
from trio_controller.observe.stats import RECONCILE_TIME_BUCKETS, Histogram, cumulative_buckets
from trio_controller.runtime.controller import Controller, ControllerOptions
from trio_controller.runtime.workqueue import WorkQueue
from trio_controller.transport.client import Client

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    text = metrics.exposition().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[metric, frozenset(labels.items())]


def pod(name: str) -> bytes:
    meta = {"name": name, "namespace": "default", "uid": name, "resourceVersion": "1"}
    return orjson.dumps({"kind": "Pod", "metadata": meta})


def event(kind: str, name: str) -> bytes:
    return b'{"type":"%s","object":%s}\n' % (kind.encode(), pod(name))


class FakeReflector:
    """Stands in for the reflector with the attributes metrics read; synced at once."""

    def __init__(self, *names: str) -> None:
        self.store = Store()
        for name in names:
            self.store.upsert(pod(name))
        self.synced = trio.Event()
        self.core = InformerCore(self.store)
        self.counts = self.core.counts
        self.relists = 0
        self.watch_restarts = 0
        self.last_event_at: float | None = None
        self.last_activity_at = 0.0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self.relists = 1
        self.synced.set()
        await trio.sleep_forever()


async def test_workqueue_metrics_come_from_the_rust_queue_with_client_gos_names(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = WorkQueue()
    metrics = Metrics(new_registry(process=False))
    metrics.workqueues.add("pod", queue)
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        queue.add_many(["default/a", "default/b", "default/c"])
        queue.add("default/a")  # already queued: deduplicated, not an add (client-go)
        first = scrape(metrics)
        assert value(first, "workqueue_depth", name="pod") == 3
        assert value(first, "workqueue_adds_total", name="pod") == 3
        assert value(first, "workqueue_retries_total", name="pod") == 0

        await trio.sleep(2)
        key = await queue.get()
        await trio.sleep(3)
        held = scrape(metrics)
        assert value(held, "workqueue_depth", name="pod") == 2
        assert value(held, "workqueue_unfinished_work_seconds", name="pod") == pytest.approx(3)
        assert value(held, "workqueue_longest_running_processor_seconds", name="pod") == (
            pytest.approx(3)
        )
        assert value(held, "workqueue_queue_duration_seconds_count", name="pod") == 1
        assert value(held, "workqueue_queue_duration_seconds_sum", name="pod") == (pytest.approx(2))
        queue.done(key)
        queue.add_rate_limited("default/d")
        last = scrape(metrics)
        nursery.cancel_scope.cancel()
    assert value(last, "workqueue_work_duration_seconds_count", name="pod") == 1
    assert value(last, "workqueue_work_duration_seconds_sum", name="pod") == pytest.approx(3)
    # controller-runtime's buckets, cumulative: the 3 s of work is in le=10 and above.
    work = "workqueue_work_duration_seconds_bucket"
    assert value(last, work, name="pod", le="1.0") == 0
    assert value(last, work, name="pod", le="10.0") == 1
    assert value(last, work, name="pod", le="1000.0") == 1
    assert value(last, work, name="pod", le="+Inf") == 1
    queued = "workqueue_queue_duration_seconds_bucket"
    assert value(last, queued, name="pod", le="1e-08") == 0
    assert value(last, queued, name="pod", le="1.0") == 0  # the 2 s wait of default/a
    assert value(last, queued, name="pod", le="10.0") == 1
    assert value(last, "workqueue_retries_total", name="pod") == 1
    assert value(last, "workqueue_unfinished_work_seconds", name="pod") == 0


async def test_reconcile_metrics_count_results_and_time_per_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def reconcile(key: str) -> None:
        if key.endswith("bad"):
            raise RuntimeError("no")

    reflector = FakeReflector()
    queue = WorkQueue()
    controller = Controller.over(reflector, queue, reconcile, name="Widget")  # type: ignore[arg-type]
    metrics = Metrics(new_registry(process=False))
    metrics.add_controller(controller)
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add_many(["default/a", "default/b", "default/bad"])
        await trio.sleep(0.001)  # the first try of bad fails
        samples = scrape(metrics)
        await trio.sleep(60)  # bad is retried five times, then dropped
        later = scrape(metrics)
        controller.stop()
    total = "controller_runtime_reconcile_total"
    assert value(samples, total, controller="widget", result="success") == 2
    assert value(samples, total, controller="widget", result="error") == 1
    # Reconcile returns nothing yet; these series exist so dashboards can use them.
    assert value(samples, total, controller="widget", result="requeue") == 0
    assert value(samples, total, controller="widget", result="requeue_after") == 0
    assert value(later, total, controller="widget", result="error") == 6
    assert value(later, "controller_runtime_reconcile_errors_total", controller="widget") == 6
    count = value(later, "controller_runtime_reconcile_time_seconds_count", controller="widget")
    assert count == 8
    fast = value(
        later, "controller_runtime_reconcile_time_seconds_bucket", controller="widget", le="0.005"
    )
    assert fast == 8  # a print-and-return reconcile is well under 5 ms
    assert value(later, "workqueue_retries_total", name="widget") == 5
    assert value(later, "controller_runtime_max_concurrent_reconciles", controller="widget") == 1


async def test_an_async_reconcile_is_timed_across_its_awaits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def reconcile(key: str) -> None:
        await trio.sleep(0.001)

    controller = Controller.over(FakeReflector(), WorkQueue(), reconcile)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        controller.queue.add("default/a")
        await trio.sleep(1)
        controller.stop()
    assert controller.stats.time.count == 1
    assert controller.stats.successes == 1
    # MockClock jumps Trio time only; the reconcile's wall time is tiny but not zero.
    assert 0 < controller.stats.time.sum < 1


async def test_reflector_metrics_read_its_counters_the_core_s_event_counts_and_the_cache(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reflector = FakeReflector("a", "b")
    metrics = Metrics(new_registry(process=False))
    metrics.reflectors.add("pod", reflector)  # type: ignore[arg-type]
    before = scrape(metrics)
    age = "trio_controller_reflector_last_event_age_seconds"
    assert not any(metric == age for metric, _ in before)  # no event yet: no sample
    assert value(before, "trio_controller_cache_objects", name="pod") == 2
    reflector.core.feed(event("ADDED", "c") + event("MODIFIED", "c") + event("ADDED", "d"), 0.0)
    reflector.relists, reflector.watch_restarts = 1, 3
    reflector.last_event_at = trio.current_time()
    await trio.sleep(7)
    after = scrape(metrics)
    assert value(after, "trio_controller_reflector_events_total", name="pod", type="ADDED") == 2
    assert value(after, "trio_controller_reflector_events_total", name="pod", type="MODIFIED") == 1
    assert value(after, "trio_controller_reflector_events_total", name="pod", type="DELETED") == 0
    assert value(after, "trio_controller_reflector_relists_total", name="pod") == 1
    assert value(after, "trio_controller_reflector_watch_restarts_total", name="pod") == 3
    assert value(after, age, name="pod") == 7


async def test_rest_client_metrics_count_requests_by_code_method_and_host() -> None:
    """Scripted server (fault injection: a 500 on cue), then a refused connection."""
    async with open_stream_server(
        Reply(200, b'{"items":[]}'), Reply.failure(500, "InternalError", "boom")
    ) as server:
        metrics = Metrics(new_registry(process=False))
        async with Client(ClusterConfig(server=server.url)) as client:
            metrics.add_client(client)
            await client.list_page("/api/v1/pods")
            with pytest.raises(ServerError, match="boom"):
                await client.list_page("/api/v1/pods")
        host = server.url.removeprefix("http://")
    # A port nothing listens on: no status, client-go's code "<error>".
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Client(ClusterConfig(server=f"http://127.0.0.1:{port}")) as refused:
        metrics.add_client(refused)
        with pytest.raises(ConnectionFailed):
            await refused.request_json("DELETE", "/api/v1/namespaces/default/pods/x")
    samples = scrape(metrics)
    requests = "rest_client_requests_total"
    assert value(samples, requests, code="200", method="GET", host=host) == 1
    assert value(samples, requests, code="500", method="GET", host=host) == 1
    other = f"127.0.0.1:{port}"
    assert value(samples, requests, code="<error>", method="DELETE", host=other) == 1
    duration = "rest_client_request_duration_seconds"
    assert value(samples, f"{duration}_count", verb="GET", host=host) == 2
    assert value(samples, f"{duration}_bucket", verb="GET", host=host, le="60.0") == 2
    assert value(samples, f"{duration}_bucket", verb="GET", host=host, le="+Inf") == 2


def test_a_histogram_counts_each_value_in_the_first_bucket_that_holds_it() -> None:
    h = Histogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        h.observe(seconds)
    assert h.cumulative() == [(0.1, 2), (1.0, 3), (math.inf, 4)]
    assert h.sum == pytest.approx(3.65)
    assert RECONCILE_TIME_BUCKETS[0] == 0.005 and RECONCILE_TIME_BUCKETS[-1] == 60.0


def test_counts_per_bucket_become_prometheus_buckets_the_last_one_inf() -> None:
    assert cumulative_buckets((0.1, 1.0), [2, 0, 5]) == [(0.1, 2), (1.0, 2), (math.inf, 7)]
    with pytest.raises(ValueError, match="2 bounds need 3 counts, not 2"):
        cumulative_buckets((0.1, 1.0), [2, 0])


def test_the_registry_is_our_own_and_carries_process_metrics() -> None:
    from prometheus_client import REGISTRY

    metrics = Metrics()
    assert metrics.registry is not REGISTRY
    names = {family.name for family in text_string_to_metric_families(
        metrics.exposition().decode()
    )}  # fmt: skip
    assert {"process_cpu_seconds", "workqueue_depth", "rest_client_requests"} <= names


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0", None),
        ("", None),
        (":8080", (None, 8080)),
        ("127.0.0.1:9090", ("127.0.0.1", 9090)),
        ("[::1]:8081", ("::1", 8081)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_bind_addresses_read_like_controller_runtimes(
    text: str, parsed: tuple[str | None, int] | None
) -> None:
    assert parse_bind_address(text) == parsed


@pytest.mark.parametrize("text", ["8080", "host:", "host:http", "h:70000"])
def test_a_bind_address_without_a_port_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_bind_address(text)


async def test_the_server_serves_metrics_and_keeps_the_connection_alive() -> None:
    queue = WorkQueue()
    metrics = Metrics()
    metrics.workqueues.add("pod", queue)
    queue.add("default/a")
    routes = {"/metrics": lambda q: Response(200, metrics.exposition(), "text/plain; v=0.0.4")}
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(serve_http, "127.0.0.1", 0, routes)
        port = listener.socket.getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            first = await http.get("/metrics")
            queue.add("default/b")
            second = await http.get("/metrics")
            missing = await http.get("/nothing")
            head = await http.head("/metrics")
            post = await http.post("/metrics", content=b"x")
        nursery.cancel_scope.cancel()
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/plain; v=0.0.4"
    assert 'workqueue_adds_total{name="pod"} 1.0' in first.text
    assert 'workqueue_adds_total{name="pod"} 2.0' in second.text
    assert missing.status_code == 404
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert post.status_code == 405


async def test_a_malformed_request_gets_400_and_the_server_keeps_serving() -> None:
    async with trio.open_nursery() as nursery:
        routes = {"/x": lambda q: Response(200, b"fine")}
        (listener,) = await nursery.start(serve_http, "127.0.0.1", 0, routes)
        port = listener.socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some():
                answer += chunk
        await stream.aclose()
        async with httpx.AsyncClient() as http:
            ok = await http.get(f"http://127.0.0.1:{port}/x")
        nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert ok.text == "fine"


async def test_a_port_in_use_is_one_clear_error() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(TrioControllerError, match=f"cannot listen on 127.0.0.1:{port}: "):
            await serve_http("127.0.0.1", port, {})


def test_leader_election_status_is_1_while_leading_and_0_while_following() -> None:
    metrics = Metrics(new_registry(process=False))
    leading = [False]
    metrics.add_leader_election("widget-operator", lambda: leading[0])
    assert value(scrape(metrics), "leader_election_master_status", name="widget-operator") == 0
    leading[0] = True
    assert value(scrape(metrics), "leader_election_master_status", name="widget-operator") == 1


async def test_active_workers_count_the_keys_being_reconciled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()
    inside = 0
    both_inside = trio.Event()

    async def reconcile(key: str) -> None:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_inside.set()
        await release.wait()

    queue = WorkQueue()
    controller = Controller.over(
        FakeReflector(), queue, reconcile, name="Widget", options=ControllerOptions(workers=3)
    )  # type: ignore[arg-type]
    metrics = Metrics(new_registry(process=False))
    metrics.add_controller(controller)
    active = "controller_runtime_active_workers"
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        assert value(scrape(metrics), active, controller="widget") == 0
        queue.add_many(["default/a", "default/b"])
        await both_inside.wait()
        assert value(scrape(metrics), active, controller="widget") == 2
        release.set()
        await trio.sleep(1)
        assert value(scrape(metrics), active, controller="widget") == 0
        controller.stop()


async def test_reconcile_causes_are_counted_per_controller_and_cause() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from trio_controller.observe.metrics import ReconcileCauseCollector
    from trio_controller.runtime.workqueue import WorkQueue

    queue = WorkQueue()
    queue.add_many_from(["ns/a"], "updated")
    queue.add_many_from(["ns/a"], "updated", via=("ConfigMap", "ns/cm"))
    queue.add_many(["ns/b"], cause="resync")
    for _ in range(2):
        queue.done(await queue.get())
    collector = ReconcileCauseCollector()
    collector.add("widget", queue)
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    for cause, n in [("updated", 1), ("related", 1), ("resync", 1), ("retry", 0)]:
        line = f'controller_runtime_reconcile_causes_total{{cause="{cause}",controller="widget"}}'
        assert f"{line} {n}.0" in text
