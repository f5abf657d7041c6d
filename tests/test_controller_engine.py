"""The worker side of a controller: reconcile causes, hot-loop warnings, the resync's low
priority and the per-reconcile timeout, under a MockClock with a store filled by hand."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from trio_controller._native import Store
from trio_controller.observe.log import v
from trio_controller.runtime.causes import ReconcileCauses, reconcile_causes
from trio_controller.runtime.controller import Controller, ControllerOptions, Requeue
from trio_controller.runtime.workqueue import WorkQueue


class FilledReflector:
    """Stands in for the reflector: the store is already synced."""

    def __init__(self, *names: str) -> None:
        self.store = Store()
        for name in names:
            meta = {"name": name, "namespace": "default", "uid": name, "resourceVersion": "1"}
            self.store.upsert(orjson.dumps({"kind": "Pod", "metadata": meta}))
        self.synced = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self.synced.set()
        await trio.sleep_forever()


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


async def test_a_reconcile_reads_why_it_runs(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[ReconcileCauses | None] = []

    async def reconcile(key: str) -> float | None:
        seen.append(reconcile_causes())
        assert controller.causes(key) == seen[-1]
        return 5.0 if len(seen) == 1 else None

    queue = WorkQueue()
    controller = Controller.over(FilledReflector(), queue, reconcile, name="Pod")  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add_many_from(["default/w"], "updated")
        queue.add_many_from(["default/w"], "updated", via=("ConfigMap", "default/w-cm"))
        await trio.sleep(10)
        controller.stop()
    assert seen == [
        ReconcileCauses({"updated": 1, "related": 1}, (("ConfigMap", "default/w-cm"),), 0),
        ReconcileCauses({"requeue_after": 1}),
    ]
    assert str(seen[0]) == "updated, related (ConfigMap default/w-cm)"
    assert seen[1] is not None and seen[1].only("requeue_after")
    assert reconcile_causes() is None  # outside a reconcile
    assert queue.native.cause_totals()["updated"] == 1


async def test_a_plain_function_reads_its_causes_too_and_errors_say_their_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str] = []

    def reconcile(key: str) -> None:
        seen.append(str(reconcile_causes()))
        if len(seen) < 3:
            raise RuntimeError("not yet")

    queue = WorkQueue()
    controller = Controller.over(FilledReflector(), queue, reconcile, name="Pod")  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/w")
        await trio.sleep(10)
        controller.stop()
    assert seen == ["manual", "retry 1", "retry 2"]


async def test_each_key_handed_out_names_its_causes_at_v4(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    queue = WorkQueue()
    controller = Controller.over(FilledReflector(), queue, lambda key: None, name="Pod")  # type: ignore[arg-type]
    caplog.set_level(v(4), logger="trio_controller")
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add_many_from(["default/a"], "deleted")
        queue.add_many(["default/b"], cause="resync")
        await trio.sleep(1)
        controller.stop()
    lines = messages(caplog, v(4))
    assert "Reconciling pod default/a (causes: deleted)" in lines
    assert "Reconciling pod default/b (causes: resync)" in lines


async def test_a_reconcile_that_retriggers_itself_gets_one_hot_loop_warning(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The fake feed plays the watch: each reconcile's write comes back as an update."""
    queue = WorkQueue()

    async def reconcile(key: str) -> None:
        await trio.sleep(1)  # the write's round trip
        if key.endswith("loop"):
            queue.add_many_from([key], "updated")

    controller = Controller.over(FilledReflector(), queue, reconcile, name="Pod")  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="trio_controller")
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add_many_from(["default/loop"], "added")
        queue.add("default/calm")
        await trio.sleep(300)  # 5 minutes of a hot loop: still one warning
        controller.stop()
    warnings = messages(caplog)
    assert warnings == [
        "Pod default/loop was reconciled 11 times within 60s (a hot loop?); top causes: updated x10"
    ]


async def test_a_hot_loop_is_reported_again_after_it_calmed_down(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    queue = WorkQueue()
    controller = Controller.over(
        FilledReflector(),
        queue,  # type: ignore[arg-type]
        lambda key: 0.5 if trio.current_time() % 200 < 30 else None,
        options=ControllerOptions(hot_loop_threshold=5),
    )
    caplog.set_level(logging.WARNING, logger="trio_controller")
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        for _ in range(3):
            queue.add("default/spiky")  # 30 s of requeues every 0.5 s, then quiet
            await trio.sleep(200 - trio.current_time() % 200)
        controller.stop()
    assert len(messages(caplog)) == 3
    assert all("top causes: requeue_after x" in m for m in messages(caplog))


async def test_no_hot_loop_warning_when_turned_off(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    queue = WorkQueue()
    controller = Controller.over(
        FilledReflector(),
        queue,  # type: ignore[arg-type]
        lambda key: 0.1,
        options=ControllerOptions(hot_loop_threshold=None),
    )
    caplog.set_level(logging.WARNING, logger="trio_controller")
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/a")
        await trio.sleep(60)
        controller.stop()
    assert messages(caplog) == []


async def test_a_resync_waits_behind_live_changes(autojump_clock: trio.testing.MockClock) -> None:
    reflector = FilledReflector("a", "b", "c")
    order: list[tuple[str, str]] = []
    queue = WorkQueue()

    def reconcile(key: str) -> None:
        causes = reconcile_causes()
        order.append((key, str(causes)))

    controller = Controller.over(
        reflector, queue, reconcile, options=ControllerOptions(resync=10.0, batch=1), name="Pod"
    )  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        await trio.sleep(10)  # the resync adds a, b, c (low) ...
        queue.add_many_from(["default/live"], "updated")  # ... and a live change arrives
        await trio.sleep(1)
        controller.stop()
    assert order[0] == ("default/live", "updated")
    assert sorted(order[1:]) == [(f"default/{k}", "resync") for k in "abc"]


async def test_an_async_reconcile_over_its_timeout_is_cancelled_and_retried_with_backoff(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    started: list[float] = []
    finished: list[float] = []

    async def reconcile(key: str) -> None:
        started.append(trio.current_time())
        await trio.sleep(10 if len(started) < 3 else 0.5)
        finished.append(trio.current_time())

    queue = WorkQueue()
    controller = Controller.over(
        FilledReflector(),
        queue,  # type: ignore[arg-type]
        reconcile,
        options=ControllerOptions(reconcile_timeout=2.0),
        name="Pod",
    )
    caplog.set_level(logging.INFO, logger="trio_controller")
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/slow")
        await trio.sleep(30)
        controller.stop()
    # Cancelled at 2 s, retried after 5 ms; cancelled again, retried after 10 ms.
    assert [round(t, 3) for t in started] == [0.0, 2.005, 4.015]
    assert [round(t, 3) for t in finished] == [4.515]
    assert controller.stats.errors == 2
    assert queue.num_requeues("default/slow") == 0
    lines = [m for m in messages(caplog, logging.INFO) if m.startswith("Error syncing")]
    assert lines[0] == (
        "Error syncing pod default/slow: ReconcileTimeout: reconcile of pod default/slow "
        "timed out after 2s and was cancelled"
    )


async def test_a_plain_function_over_its_timeout_runs_to_the_end_with_a_warning(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain function cannot be cancelled: its result stands, one WARNING says so."""
    now = [0.0]
    monkeypatch.setattr("trio_controller.runtime.controller.time.perf_counter", lambda: now[0])
    results: list[str] = []

    def reconcile(key: str) -> Requeue | None:
        now[0] += 3.0  # a blocking call of 3 s
        results.append(key)
        return Requeue(after=100.0) if len(results) == 1 else None

    queue = WorkQueue()
    controller = Controller.over(
        FilledReflector(),
        queue,  # type: ignore[arg-type]
        reconcile,
        options=ControllerOptions(reconcile_timeout=1.0),
        name="Pod",
    )
    caplog.set_level(logging.WARNING, logger="trio_controller")
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/blocking")
        await trio.sleep(1)
        controller.stop()
    assert results == ["default/blocking"]
    assert controller.stats.errors == 0 and controller.stats.requeues_after == 1
    assert messages(caplog) == [
        "Reconcile of pod default/blocking took 3s, over reconcile_timeout (1s); a plain "
        "function cannot be cancelled (make it async to be)"
    ]


def test_a_bad_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="reconcile_timeout must be a positive number"):
        Controller.over(
            FilledReflector(),
            WorkQueue(),
            lambda k: None,
            options=ControllerOptions(reconcile_timeout=0),
        )  # type: ignore[arg-type]


async def test_a_threaded_reconcile_reads_its_causes_in_its_worker_thread() -> None:
    seen: list[str] = []
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def reconcile(key: str) -> None:
        seen.append(str(reconcile_causes()))
        token.run_sync_soon(done.set)

    queue = WorkQueue()
    controller = Controller.over(
        FilledReflector(), queue, reconcile, options=ControllerOptions(threaded=True), name="Pod"
    )  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add_many_from(["default/t"], "added")
        await done.wait()
        controller.stop()
    assert seen == ["added"]
