"""Controller semantics of client-go's workqueue example: retries, drops, resync, stingy
workers, shutdown. The reflector is replaced by a store filled by hand (no network)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from trio_controller._native import Store
from trio_controller.programs.pods.printer import PodSyncPrinter
from trio_controller.runtime.controller import Controller, ControllerOptions, Requeue
from trio_controller.runtime.workqueue import WorkQueue


def pod(name: str) -> bytes:
    meta = {"name": name, "namespace": "default", "uid": name, "resourceVersion": "1"}
    return orjson.dumps({"kind": "Pod", "metadata": meta})


class FilledReflector:
    """Stands in for the reflector: the store is already synced."""

    def __init__(self, *names: str) -> None:
        self.store = Store()
        for name in names:
            self.store.upsert(pod(name))
        self.synced = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self.synced.set()
        await trio.sleep_forever()


async def test_a_failing_key_is_retried_five_times_with_backoff_then_dropped(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[float] = []

    def reconcile(key: str) -> None:
        calls.append(trio.current_time())
        raise RuntimeError(f"cannot handle {key}")

    reflector = FilledReflector()
    queue = WorkQueue()
    controller = Controller.over(reflector, queue, reconcile, name="Pod")  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="trio_controller")
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/broken")
        await trio.sleep(60)
        controller.stop()
    assert len(calls) == 6  # the first try and five retries
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(calls)]
    assert gaps == [0.005, 0.01, 0.02, 0.04, 0.08]
    assert queue.num_requeues("default/broken") == 0  # forgotten when dropped
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Error syncing pod default/broken") for m in messages) == 5
    assert any(m.startswith("Dropping pod 'default/broken' out of the queue") for m in messages)
    assert all("RuntimeError: cannot handle" in m for m in messages if "default/broken" in m)


async def test_a_key_that_recovers_is_forgotten(autojump_clock: trio.testing.MockClock) -> None:
    failures = {"default/flaky": 2}
    handled: list[str] = []

    def reconcile(key: str) -> None:
        if failures.get(key, 0) > 0:
            failures[key] -= 1
            raise RuntimeError("not yet")
        handled.append(key)

    reflector = FilledReflector()
    queue = WorkQueue()
    controller = Controller.over(reflector, queue, reconcile)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/flaky")
        queue.add("default/fine")
        await trio.sleep(1)
        assert queue.num_requeues("default/flaky") == 0
        controller.stop()
    assert sorted(handled) == ["default/fine", "default/flaky"]


async def test_async_reconcile_runs_on_several_workers_but_never_twice_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    running: set[str] = set()
    overlaps: list[str] = []
    count = 0

    async def reconcile(key: str) -> None:
        nonlocal count
        if key in running:
            overlaps.append(key)
        running.add(key)
        count += 1
        queue.add(key) if count < 20 else None  # re-added while processing
        await trio.sleep(0.1)
        running.discard(key)

    reflector = FilledReflector()
    queue = WorkQueue()
    controller = Controller.over(reflector, queue, reconcile, options=ControllerOptions(workers=4))  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/hot")
        await trio.sleep(10)
        controller.stop()
    assert overlaps == []
    assert count == 20  # each add during processing gave exactly one more run


async def test_resync_reenqueues_every_cached_key_each_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[float, str]] = []
    reflector = FilledReflector("a", "b")
    queue = WorkQueue()
    controller = Controller.over(
        reflector,  # type: ignore[arg-type]
        queue,
        lambda key: seen.append((trio.current_time(), key)),
        options=ControllerOptions(resync=30.0),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        await trio.sleep(95)
        controller.stop()
    by_period: dict[int, list[str]] = {}
    for t, key in seen:
        by_period.setdefault(round(t), []).append(key)
    assert {t: sorted(keys) for t, keys in by_period.items()} == {
        30: ["default/a", "default/b"],
        60: ["default/a", "default/b"],
        90: ["default/a", "default/b"],
    }


async def test_stop_drains_the_keys_already_queued(autojump_clock: trio.testing.MockClock) -> None:
    handled: list[str] = []

    async def reconcile(key: str) -> None:
        await trio.sleep(1)
        handled.append(key)

    reflector = FilledReflector()
    queue = WorkQueue()
    controller = Controller.over(reflector, queue, reconcile, options=ControllerOptions(workers=2))  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add_many([f"default/p{i}" for i in range(6)])
        await trio.sleep(0.5)
        controller.stop()
    assert sorted(handled) == [f"default/p{i}" for i in range(6)]


async def test_stop_before_the_cache_syncs_returns_without_starting_workers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class NeverSynced(FilledReflector):
        async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await trio.sleep_forever()

    handled: list[str] = []
    controller = Controller.over(NeverSynced(), WorkQueue(), handled.append)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(controller.run)
        await trio.sleep(5)
        controller.stop()
    assert handled == []


class CountingOut:
    """A stdout that records each write."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


async def test_the_lines_of_a_batch_of_ready_keys_leave_in_one_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    names = [f"p{i}" for i in range(10)]
    reflector = FilledReflector(*names)
    queue = WorkQueue()
    out = CountingOut()
    printer = PodSyncPrinter(reflector.store, out)  # type: ignore[arg-type]
    controller = Controller.over(
        reflector, queue, printer, options=ControllerOptions(flush=printer.flush)
    )  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add_many([f"default/{n}" for n in names] + ["default/gone"])
        await trio.sleep(1)
        assert len(out.writes) == 1
        assert out.writes[0].splitlines() == [
            *(f"Sync/Add/Update for Pod {n}" for n in names),
            "Pod default/gone does not exist anymore",
        ]
        # A key that arrives alone is written at once, not held back for more.
        queue.add("default/p3")
        await trio.sleep(0.001)
        assert out.writes[1:] == ["Sync/Add/Update for Pod p3\n"]
        controller.stop()


async def test_when_retries_run_out_one_error_line_carries_the_exception_and_traceback(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    def reconcile(key: str) -> None:
        {}["spec"]  # a KeyError from inside the reconcile

    queue = WorkQueue()
    controller = Controller.over(FilledReflector(), queue, reconcile, name="Widget")  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="trio_controller")
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/w")
        await trio.sleep(60)
        controller.stop()
    retries = [r for r in caplog.records if r.getMessage().startswith("Error syncing")]
    assert [r.getMessage() for r in retries] == [
        "Error syncing widget default/w: KeyError: 'spec'"
    ] * 5
    assert all(r.levelno == logging.INFO for r in retries)
    (dropped,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert dropped.getMessage() == (
        "Dropping widget 'default/w' out of the queue after 5 retries: KeyError: 'spec'"
    )
    assert dropped.exc_info is not None and dropped.exc_info[0] is KeyError
    assert dropped.exc_info[2] is not None  # the traceback, down to the reconcile
    assert "reconcile" in "".join(traceback.format_tb(dropped.exc_info[2]))
    assert controller.stats.errors == 6


async def test_a_reconcile_returning_seconds_is_looked_at_again_that_much_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[float] = []

    async def reconcile(key: str) -> float | None:
        calls.append(trio.current_time())
        return 30.0 if len(calls) < 3 else None

    queue = WorkQueue()
    controller = Controller.over(FilledReflector(), queue, reconcile)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        start = trio.current_time()
        queue.add("default/a")
        await trio.sleep(200)
        controller.stop()
    assert [round(t - start, 3) for t in calls] == [0.0, 30.0, 60.0]
    assert controller.stats.requeues_after == 2
    assert controller.stats.successes == 1
    assert queue.num_requeues("default/a") == 0


async def test_requeue_after_and_requeue_with_the_rate_limiter_from_a_plain_function(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[tuple[str, float]] = []
    answers = {"default/later": [Requeue(after=5.0)], "default/again": [Requeue(), Requeue()]}

    def reconcile(key: str) -> Requeue | None:
        calls.append((key, trio.current_time()))
        left = answers[key]
        return left.pop(0) if left else None

    queue = WorkQueue()
    controller = Controller.over(FilledReflector(), queue, reconcile)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        start = trio.current_time()
        queue.add_many(["default/later", "default/again"])
        await trio.sleep(60)
        controller.stop()
    times = {key: [round(t - start, 3) for k, t in calls if k == key] for key in answers}
    assert times == {"default/later": [0.0, 5.0], "default/again": [0.0, 0.005, 0.015]}
    assert (controller.stats.requeues, controller.stats.requeues_after) == (2, 1)
    assert controller.stats.errors == 0


async def test_a_reconcile_returning_something_else_is_an_error(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    queue = WorkQueue()
    controller = Controller.over(
        FilledReflector(), queue, lambda key: True, options=ControllerOptions(max_retries=0)
    )  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/a")
        await trio.sleep(1)
        controller.stop()
    assert controller.stats.errors == 1
    assert any("TypeError: reconcile returned True" in r.getMessage() for r in caplog.records)


async def test_a_threaded_reconcile_blocks_in_a_worker_thread_while_trio_runs_on() -> None:
    """Real time: a thread's sleep is not Trio's to skip."""
    threads: list[int] = []
    ticks = 0

    def reconcile(key: str) -> None:
        threads.append(threading.get_ident())
        time.sleep(0.2)  # a blocking call

    async def tick() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    queue = WorkQueue()
    controller = Controller.over(
        FilledReflector(), queue, reconcile, options=ControllerOptions(threaded=True)
    )  # type: ignore[arg-type]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(controller.run)
            nursery.start_soon(tick)
            queue.add_many(["default/a", "default/b"])
            while controller.stats.time.count < 2:  # noqa: ASYNC110
                await trio.sleep(0.01)
            controller.stop()
            nursery.cancel_scope.cancel()
    assert len(threads) == 2 and threading.get_ident() not in threads
    assert ticks >= 20  # the loop went on while the reconcile slept (0.4 s)
    assert controller.stats.successes == 2
    assert 0.35 < controller.stats.time.sum < 2


async def test_an_object_with_an_async_call_method_is_an_async_reconcile(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reconciler class (`async def __call__`) is awaited, not taken for a plain
    function whose result is a coroutine (found writing the widget operator)."""

    class Reconciler:
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def __call__(self, key: str) -> None:
            await trio.lowlevel.checkpoint()
            self.seen.append(key)

    reconciler = Reconciler()
    queue = WorkQueue()
    controller = Controller.over(FilledReflector("a"), queue, reconciler)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        queue.add("default/a")
        await trio.sleep(1)
        controller.stop()
    assert reconciler.seen == ["default/a"]
    assert queue.num_requeues("default/a") == 0
