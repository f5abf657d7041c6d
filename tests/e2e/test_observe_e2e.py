"""Running it in production: /metrics, /healthz and /readyz of the `trio-controller` CLI
against a real kube-apiserver and etcd (testenv), JSON logs, and the cache-sync timeout.

The tests named `..._a_server_that_never_answers` use a TCP listener that accepts and
then says nothing: fault injection (a real apiserver cannot be made to hang on cue).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import trio
import yaml
from controller_process import ControllerProcess, run_controller
from prometheus_client.parser import text_string_to_metric_families

from trio_controller.api import PODS
from trio_controller.cache.options import InformerOptions
from trio_controller.config import load_config
from trio_controller.observe.health import Health
from trio_controller.observe.metrics import CONTENT_TYPE_LATEST, Metrics
from trio_controller.observe.serving import Response, serve_http
from trio_controller.runtime.controller import Controller, ControllerOptions
from trio_controller.testing import EnvInfo, PodHelper
from trio_controller.transport.client import Client

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
LOCAL = "127.0.0.1:0"


def sync(name: str) -> str:
    return f"Sync/Add/Update for Pod {name}"


async def served_at(ctl: ControllerProcess, what: str) -> str:
    """The base URL the CLI logged for `what` (`/metrics` or `/healthz`)."""
    pattern = re.compile(rf"Serving (?:\S+, )*{what}(?:, \S+)* on (http://\S+)")
    with trio.fail_after(30):
        while True:
            for line in ctl.stderr:
                if match := pattern.search(line):
                    return match.group(1)
            await ctl.wait_stderr("Serving ")  # at least one server is up; look again
            await trio.sleep(0.05)


async def scrape(http: httpx.AsyncClient, url: str) -> Samples:
    response = await http.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[metric, frozenset(labels.items())]


def counters(samples: Samples) -> Samples:
    """Our counter samples (`..._total`, histogram `_count`/`_sum`/`_bucket`)."""
    ours = ("workqueue_", "controller_runtime_", "rest_client_", "trio_controller_reflector_")
    return {
        key: v
        for key, v in samples.items()
        if key[0].startswith(ours) and key[0].endswith(("_total", "_count", "_sum", "_bucket"))
    }


async def test_metrics_and_probes_follow_the_controller_on_a_real_apiserver(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    for i in range(5):
        await pods.create_pod(namespace, f"m-{i}")
    # One address for both: a single server serves /metrics, /healthz and /readyz.
    async with (
        run_controller(
            "--kubeconfig",
            envtest.token_kubeconfig,
            "-n",
            namespace,
            "-v",
            "6",
            "--metrics-bind-address",
            LOCAL,
            "--health-probe-bind-address",
            LOCAL,
        ) as ctl,  # fmt: skip
        httpx.AsyncClient(timeout=10) as http,
    ):
        metrics = await served_at(ctl, "/metrics")
        probes = await served_at(ctl, "/healthz")
        for i in range(5):
            await ctl.wait_stdout(sync(f"m-{i}"))
        await ctl.wait_stderr("Caches are synced (5 objects)")
        ready = await http.get(probes + "/readyz?verbose")
        assert (ready.status_code, ready.text) == (
            200,
            "[+]ping ok\n[+]informer-sync ok\nreadyz check passed\n",
        )
        assert (await http.get(probes + "/healthz")).text == "ok"

        first = await scrape(http, metrics)
        assert value(first, "workqueue_depth", name="pod") == 0
        assert value(first, "workqueue_adds_total", name="pod") >= 5
        assert value(first, "trio_controller_cache_objects", name="pod") == 5
        assert value(first, "trio_controller_reflector_relists_total", name="pod") == 1
        added = value(first, "trio_controller_reflector_events_total", name="pod", type="ADDED")
        assert added >= 5  # a streaming list delivers the pods as ADDED events
        total = "controller_runtime_reconcile_total"
        assert value(first, total, controller="pod", result="success") >= 5
        assert value(first, total, controller="pod", result="error") == 0
        server = envtest.server.removeprefix("https://")
        requests = [
            (dict(labels), n)
            for (name, labels), n in first.items()
            if name == "rest_client_requests_total"
        ]
        assert {"code": "200", "method": "WATCH", "host": server} in [r for r, _ in requests]
        assert value(first, "rest_client_request_duration_seconds_count", verb="WATCH", host=server)

        for i in range(5, 8):
            await pods.create_pod(namespace, f"m-{i}")
            await ctl.wait_stdout(sync(f"m-{i}"))
        await pods.delete_pod(namespace, "m-0")
        await ctl.wait_stdout(f"Pod {namespace}/m-0 does not exist anymore")
        second = await scrape(http, metrics)
        assert value(second, "workqueue_depth", name="pod") == 0
        assert (
            value(second, "workqueue_adds_total", name="pod")
            >= value(first, "workqueue_adds_total", name="pod") + 4
        )
        assert value(second, "trio_controller_cache_objects", name="pod") == 7
        events = "trio_controller_reflector_events_total"
        assert value(second, events, name="pod", type="ADDED") >= added + 3
        assert value(second, events, name="pod", type="DELETED") >= 1
        age = value(second, "trio_controller_reflector_last_event_age_seconds", name="pod")
        assert 0 <= age < 30
        assert value(second, total, controller="pod", result="success") >= (
            value(first, total, controller="pod", result="success") + 4
        )
        before, after = counters(first), counters(second)
        assert before.keys() <= after.keys()
        assert [key for key in before if after[key] < before[key]] == []  # monotonic
        assert await ctl.terminate() == 0
    logs = "\n".join(ctl.stderr)
    assert re.search(rf"WATCH /api/v1/namespaces/{namespace}/pods 200 in \d+ milliseconds", logs)
    (user,) = yaml.safe_load(await trio.Path(envtest.token_kubeconfig).read_text())["users"]
    assert user["user"]["token"] not in logs
    assert "Bearer" not in logs and "Authorization" not in logs


async def test_workqueue_retries_count_failing_reconciles_on_a_real_apiserver(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    """The library, not the CLI: a reconcile that fails for one pod, scraped over HTTP."""
    await pods.create_pod(namespace, "good")
    await pods.create_pod(namespace, "bad")
    attempts: dict[str, int] = {}
    dropped = trio.Event()

    def reconcile(key: str) -> None:
        attempts[key] = attempts.get(key, 0) + 1
        if key.endswith("/bad"):
            if attempts[key] == 4:  # the first try and 3 retries: dropped after this one
                dropped.set()
            raise RuntimeError("bad pod")

    config = load_config(kubeconfig=envtest.admin_kubeconfig)
    async with Client(config) as client:
        controller = Controller(
            client, PODS, reconcile, namespace=namespace, name="Widget",
            options=ControllerOptions(max_retries=3),
            informer_options=InformerOptions(streaming_list=True),
        )  # fmt: skip
        metrics = Metrics()
        metrics.add_controller(controller)
        metrics.add_client(client)
        health = Health()
        health.add_controller(controller)
        routes = {
            "/metrics": lambda q: Response(200, metrics.exposition(), CONTENT_TYPE_LATEST),
            **health.routes(),
        }
        async with trio.open_nursery() as nursery:
            (listener,) = await nursery.start(serve_http, "127.0.0.1", 0, routes)
            url = f"http://127.0.0.1:{listener.socket.getsockname()[1]}"
            await nursery.start(controller.run)
            async with httpx.AsyncClient(timeout=10) as http:
                with trio.fail_after(30):
                    await dropped.wait()
                await trio.sleep(0.2)
                samples = await scrape(http, url)
                ready = await http.get(url + "/readyz")
            controller.stop()
            nursery.cancel_scope.cancel()
    assert ready.status_code == 200
    assert value(samples, "workqueue_retries_total", name="widget") == 3
    assert value(samples, "controller_runtime_reconcile_errors_total", controller="widget") == 4
    total = "controller_runtime_reconcile_total"
    assert value(samples, total, controller="widget", result="error") == 4
    assert value(samples, total, controller="widget", result="success") == 1
    time_count = value(
        samples, "controller_runtime_reconcile_time_seconds_count", controller="widget"
    )
    assert time_count == 5
    assert value(samples, "workqueue_work_duration_seconds_count", name="widget") == 5
    assert value(samples, "workqueue_depth", name="widget") == 0


async def test_json_logs_are_one_object_per_line_on_a_real_apiserver(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    await pods.create_pod(namespace, "j-0")
    await pods.create_pod(namespace, "j-1")
    async with run_controller(
        "--kubeconfig", envtest.admin_kubeconfig, "-n", namespace, "--logging-format", "json",
        "-v", "6",
    ) as ctl:  # fmt: skip
        await ctl.wait_stdout(sync("j-0"))
        await ctl.wait_stdout(sync("j-1"))
        await ctl.wait_stderr("Caches are synced")
        assert await ctl.terminate() == 0
    entries = [orjson.loads(line) for line in ctl.stderr if line]
    assert all(isinstance(e["ts"], float) and e["level"] and e["msg"] for e in entries)
    (synced,) = [e for e in entries if e["msg"].startswith("Caches are synced")]
    assert synced["objects"] == 2 and synced["level"] == "info" and synced["v"] == 0
    requests = [e for e in entries if e.get("verb") == "WATCH"]
    assert requests and requests[0]["v"] == 6 and requests[0]["status"] == 200
    assert any(e["msg"] == "Stopping Pod controller" for e in entries)


@pytest.fixture
async def silent_server(tmp_path: Path) -> AsyncIterator[Path]:
    """A kubeconfig whose server accepts connections and never answers."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def hold(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    config = tmp_path / "silent.kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]\n"
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, hold, listeners)
        yield config
        nursery.cancel_scope.cancel()


async def test_the_cache_sync_timeout_is_one_error_line_against_a_server_that_never_answers(
    silent_server: Path,
) -> None:
    started = trio.current_time()
    async with run_controller("--kubeconfig", silent_server, "--cache-sync-timeout", "2") as ctl:
        assert await ctl.wait(within=20) == 1
    took = trio.current_time() - started
    assert 2 <= took < 15
    assert ctl.stdout == []
    assert [line for line in ctl.stderr if "error" in line.lower()] == [
        "error: timed out waiting for caches to sync after 2s"
    ]
    assert ctl.stderr[-1] == "error: timed out waiting for caches to sync after 2s"
    assert "Traceback" not in "\n".join(ctl.stderr)


async def test_probes_and_metrics_answer_while_syncing_against_a_server_that_never_answers(
    silent_server: Path,
) -> None:
    async with (
        run_controller(
            "--kubeconfig",
            silent_server,
            "--cache-sync-timeout",
            "0",
            "--metrics-bind-address",
            LOCAL,
            "--health-probe-bind-address",
            LOCAL,
        ) as ctl,  # fmt: skip
        httpx.AsyncClient(timeout=10) as http,
    ):
        probes = await served_at(ctl, "/healthz")
        metrics = await served_at(ctl, "/metrics")
        ready = await http.get(probes + "/readyz")
        assert ready.status_code == 503
        assert ready.text.splitlines() == [
            "[+]ping ok",
            "[-]informer-sync failed: cache not synced",
            "readyz check failed",
        ]
        live = await http.get(probes + "/healthz")
        assert (live.status_code, live.text) == (200, "ok")
        samples = await scrape(http, metrics)
        assert value(samples, "trio_controller_cache_objects", name="pod") == 0
        assert value(samples, "trio_controller_reflector_relists_total", name="pod") == 0
        assert value(samples, "workqueue_depth", name="pod") == 0
        age = "trio_controller_reflector_last_event_age_seconds"
        assert not any(name == age for name, _ in samples)
        await ctl.wait_stderr("Still syncing: 0 objects so far", within=15)
        assert (await http.get(probes + "/readyz")).status_code == 503  # still not ready
        assert await ctl.terminate() == 0
    assert not any(line.startswith("error:") for line in ctl.stderr)


async def test_a_standby_replica_is_ready_and_alive_while_another_leads(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    """Its caches start only when it leads; a standby that is never ready would block
    every rollout of a two-replica Deployment."""
    await pods.create_pod(namespace, "lead")
    args = (
        "--kubeconfig", envtest.admin_kubeconfig, "-n", namespace, "--leader-elect",
        "--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
        "--leader-elect-retry-period", "0.5", "--health-probe-bind-address", LOCAL,
    )  # fmt: skip
    async with (
        run_controller(*args) as leader,
        httpx.AsyncClient(timeout=10) as http,
    ):
        await leader.wait_stdout(sync("lead"))
        async with run_controller(*args) as standby:
            await standby.wait_stderr("attempting to acquire leader lease")
            probes = await served_at(standby, "/healthz")
            ready = await http.get(probes + "/readyz?verbose")
            assert (ready.status_code, ready.text) == (
                200,
                "[+]ping ok\n[+]informer-sync ok\nreadyz check passed\n",
            )
            assert (await http.get(probes + "/healthz")).text == "ok"
            assert standby.stdout == []  # still not leading
            assert await standby.terminate() == 0
        assert await leader.terminate() == 0
