"""Health probes: /readyz waits for the cache, /healthz fails only when the watch loop is
wedged or its task died; the bodies read like the apiserver's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
import trio.testing

from trio_controller._native import Store
from trio_controller.observe.health import STALL_AFTER, Health
from trio_controller.observe.serving import serve_http
from trio_controller.runtime.controller import Controller
from trio_controller.runtime.workqueue import WorkQueue


class GatedReflector:
    """Stands in for the reflector: syncs when `sync` is set, shows activity on `poke`."""

    def __init__(self) -> None:
        self.store = Store()
        self.synced = trio.Event()
        self.sync = trio.Event()
        self.last_activity_at = 0.0
        self.fail: BaseException | None = None
        self._poked = trio.Event()

    def poke(self) -> None:
        self._poked.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self.last_activity_at = trio.current_time()
        await self.sync.wait()
        self.synced.set()
        while True:
            await self._poked.wait()
            self._poked = trio.Event()
            if self.fail is not None:
                raise self.fail
            self.last_activity_at = trio.current_time()


def probe(health: Health, path: str, *query: str) -> tuple[int, str]:
    response = health.routes()[path]({q: [""] for q in query})
    return response.status, response.body.decode()


async def test_readyz_fails_naming_the_check_until_the_cache_is_synced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reflector = GatedReflector()
    controller = Controller.over(reflector, WorkQueue(), lambda key: None)  # type: ignore[arg-type]
    health = Health()
    health.add_controller(controller)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(controller.run)
        await trio.sleep(1)
        assert probe(health, "/readyz") == (
            503,
            "[+]ping ok\n[-]informer-sync failed: cache not synced\nreadyz check failed\n",
        )
        assert probe(health, "/healthz") == (200, "ok")
        reflector.sync.set()
        await trio.sleep(1)
        assert probe(health, "/readyz") == (200, "ok")
        assert probe(health, "/readyz", "verbose") == (
            200,
            "[+]ping ok\n[+]informer-sync ok\nreadyz check passed\n",
        )
        assert probe(health, "/healthz", "verbose") == (
            200,
            "[+]ping ok\n[+]watch ok\nhealthz check passed\n",
        )
        controller.stop()


async def test_healthz_fails_once_the_watch_loop_is_silent_for_longer_than_a_watch_can_be(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reflector = GatedReflector()
    reflector.sync.set()
    controller = Controller.over(reflector, WorkQueue(), lambda key: None)  # type: ignore[arg-type]
    health = Health()
    health.add_controller(controller)
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        await trio.sleep(STALL_AFTER - 1)
        assert probe(health, "/healthz")[0] == 200
        reflector.poke()  # a read: the loop is alive
        await trio.sleep(STALL_AFTER - 1)
        assert probe(health, "/healthz")[0] == 200
        await trio.sleep(2)
        status, body = probe(health, "/healthz")
        assert status == 503
        assert "[-]watch failed: no watch activity for 661s" in body.splitlines()
        assert body.endswith("healthz check failed\n")
        assert probe(health, "/readyz")[0] == 200  # ready is about the cache, not liveness
        controller.stop()
    # A stopped controller is not a wedged one.
    assert probe(health, "/healthz")[0] == 200


async def test_healthz_fails_when_the_reflector_task_died(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reflector = GatedReflector()
    reflector.sync.set()
    controller = Controller.over(reflector, WorkQueue(), lambda key: None)  # type: ignore[arg-type]
    health = Health()
    health.add_controller(controller)
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="broken"), flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await nursery.start(controller.run)
            reflector.fail = RuntimeError("broken")
            reflector.poke()
    status, body = probe(health, "/healthz")
    assert status == 503
    assert "[-]watch failed: reflector stopped: broken" in body


async def test_a_standby_replica_is_ready_and_alive_before_it_leads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reflector = GatedReflector()
    controller = Controller.over(reflector, WorkQueue(), lambda key: None)  # type: ignore[arg-type]
    leading = False
    health = Health()
    health.add_controller(controller, standby=lambda: not leading)
    await trio.sleep(STALL_AFTER * 2)  # controller.run not started: waiting for the Lease
    assert probe(health, "/readyz") == (200, "ok")
    assert probe(health, "/healthz") == (200, "ok")
    leading = True
    assert probe(health, "/readyz")[0] == 503


def test_a_check_that_raises_fails_its_probe_instead_of_breaking_it() -> None:
    health = Health()

    def broken() -> str | None:
        raise KeyError("x")

    health.add_readiness_check("broken", broken)
    assert probe(health, "/readyz") == (
        503,
        "[+]ping ok\n[-]broken failed: check raised KeyError: 'x'\nreadyz check failed\n",
    )


async def test_the_probes_are_served_over_http() -> None:
    reflector = GatedReflector()
    controller = Controller.over(reflector, WorkQueue(), lambda key: None)  # type: ignore[arg-type]
    health = Health()
    health.add_controller(controller)
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(serve_http, "127.0.0.1", 0, health.routes())
        base = f"http://127.0.0.1:{listener.socket.getsockname()[1]}"
        nursery.start_soon(controller.run)
        async with httpx.AsyncClient(base_url=base) as http:
            before = await http.get("/readyz")
            reflector.sync.set()
            with trio.fail_after(5):
                await reflector.synced.wait()
            after = await http.get("/readyz?verbose")
            live = await http.get("/healthz")
        controller.stop()
        nursery.cancel_scope.cancel()
    assert before.status_code == 503
    assert "[-]informer-sync failed: cache not synced" in before.text
    assert after.status_code == 200
    assert after.text.endswith("readyz check passed\n")
    assert live.status_code == 200 and live.text == "ok"


class FakeInformer:
    def __init__(self) -> None:
        self.reflector = GatedReflector()
        self.running = True
        self.key = type("Key", (), {"path": "/api/v1/pods"})()


class FakeFactory:
    def __init__(self, *informers: FakeInformer) -> None:
        self.informers = list(informers)

    @property
    def has_synced(self) -> bool:
        return all(i.reflector.synced.is_set() for i in self.informers)


async def test_a_managers_probes_cover_every_informer_of_its_factory(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pods, other = FakeInformer(), FakeInformer()
    health = Health()
    health.add_factory(FakeFactory(pods, other))  # type: ignore[arg-type]
    assert probe(health, "/readyz") == (
        503, "[+]ping ok\n[-]informer-sync failed: cache not synced\nreadyz check failed\n"
    )  # fmt: skip
    pods.reflector.synced.set()
    assert probe(health, "/readyz")[0] == 503  # one cache still syncing
    other.reflector.synced.set()
    assert probe(health, "/readyz") == (200, "ok")
    assert probe(health, "/healthz") == (200, "ok")
    await trio.sleep(STALL_AFTER + 1)
    status, body = probe(health, "/healthz")
    assert status == 503 and "[-]watch failed: no watch activity on /api/v1/pods" in body
    pods.running = other.running = False  # stopped informers are not wedged
    assert probe(health, "/healthz") == (200, "ok")
