"""The Trio work queue: waiting, delays, rate limits and drain under a MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_controller import WorkQueue
from trio_controller.native import ExponentialFailureRateLimiter, ShutDown


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_get_returns_keys_in_order_without_duplicates() -> None:
    q = WorkQueue()
    for key in ["a", "b", "a", "c"]:
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_get_always_checkpoints() -> None:
    q = WorkQueue()
    q.add("a")
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await q.get()
    assert len(q) == 1
    with trio.testing.assert_checkpoints():
        assert await q.get() == "a"
    q.shut_down()
    with trio.testing.assert_checkpoints(), pytest.raises(ShutDown):
        await q.get()


async def test_a_waiting_getter_wakes_when_a_key_is_added(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    got: list[str] = []

    async def worker() -> None:
        got.append(await q.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await trio.sleep(1)
        assert got == []
        q.add("a")
    assert got == ["a"]


async def test_a_key_added_while_processing_is_handed_out_again_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    assert len(q) == 0
    with pytest.raises(trio.WouldBlock):
        q.get_nowait()
    q.done(key)
    assert await q.get() == "a"


async def test_shut_down_wakes_getters_with_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    errors: list[BaseException] = []

    async def worker() -> None:
        try:
            await q.get()
        except ShutDown as e:
            errors.append(e)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        nursery.start_soon(worker)
        await trio.sleep(1)
        q.shut_down()
    assert len(errors) == 2
    q.add("ignored")
    assert len(q) == 0


async def test_shut_down_lets_getters_drain_queued_keys_first() -> None:
    q = WorkQueue()
    q.add("a")
    q.shut_down()
    assert await q.get() == "a"
    with pytest.raises(ShutDown):
        await q.get()


async def test_add_after_is_delivered_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(q.run)
        start = trio.current_time()
        q.add_after("late", 5)
        q.add_after("early", 2)
        assert await q.get() == "early"
        assert trio.current_time() - start == pytest.approx(2)
        assert await q.get() == "late"
        assert trio.current_time() - start == pytest.approx(5)
        q.shut_down()


async def test_an_earlier_deadline_replaces_a_later_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(q.run)
        start = trio.current_time()
        q.add_after("a", 10)
        await trio.sleep(1)
        q.add_after("a", 1)
        assert await q.get() == "a"
        assert trio.current_time() - start == pytest.approx(2)
        q.done("a")
        with trio.move_on_after(100):
            await q.get()
            pytest.fail("the later deadline must not deliver the key again")
        q.shut_down()


async def test_add_rate_limited_backs_off_exponentially(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue(ExponentialFailureRateLimiter(base=1.0, max_delay=100.0))
    waits = []
    async with trio.open_nursery() as nursery:
        await nursery.start(q.run)
        for _ in range(4):
            start = trio.current_time()
            q.add_rate_limited("a")
            key = await q.get()
            waits.append(trio.current_time() - start)
            q.done(key)
        assert q.num_requeues("a") == 4
        q.forget("a")
        assert q.num_requeues("a") == 0
        q.shut_down()
    assert waits == pytest.approx([1, 2, 4, 8])


async def test_the_default_limiter_waits_5ms_first(autojump_clock: trio.testing.MockClock) -> None:
    q = WorkQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(q.run)
        start = trio.current_time()
        q.add_rate_limited("a")
        await q.get()
        assert trio.current_time() - start == pytest.approx(0.005)
        q.shut_down()


async def test_shut_down_with_drain_waits_for_keys_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    q.add("a")
    finished: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except ShutDown:
                return
            await trio.sleep(3)
            finished.append(key)
            q.done(key)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await trio.sleep(1)
        await q.shut_down_with_drain()
        assert finished == ["a"]
        assert trio.current_time() == pytest.approx(3)


async def test_shut_down_with_drain_returns_at_once_when_nothing_is_in_flight() -> None:
    q = WorkQueue()
    q.add("a")
    with trio.testing.assert_checkpoints():
        await q.shut_down_with_drain()
    assert q.shutting_down()


async def test_keys_added_to_native_are_seen_after_wake(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    got: list[str] = []

    async def worker() -> None:
        got.append(await q.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await trio.sleep(1)
        q.native.add_many(["x", "y"], trio.current_time())
        q.wake()
    assert got == ["x"]
    assert len(q) == 1


async def test_run_returns_after_shut_down(autojump_clock: trio.testing.MockClock) -> None:
    q = WorkQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(q.run)
        q.add_after("a", 100)
        await trio.sleep(1)
        q.shut_down()
    assert trio.current_time() == pytest.approx(1)


async def test_a_getter_cancelled_while_waiting_loses_no_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    got: list[str] = []

    async def patient() -> None:
        got.append(await q.get())

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(1):
            await q.get()
        nursery.start_soon(patient)
        await trio.sleep(1)
        q.add("a")
    assert got == ["a"]
    assert q.native.processing() == 1


async def test_many_workers_never_hold_the_same_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    holding: set[str] = set()
    processed: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except ShutDown:
                return
            assert key not in holding
            holding.add(key)
            await trio.sleep(0.1)
            holding.discard(key)
            processed.append(key)
            q.done(key)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(worker)
        for round_ in range(20):
            for i in range(10):
                q.add(f"k{(i + round_) % 7}")
            await trio.sleep(0.05)
        await trio.sleep(5)
        await q.shut_down_with_drain()
    assert set(processed) == {f"k{i}" for i in range(7)}


async def test_statistics_report_client_go_metrics(autojump_clock: trio.testing.MockClock) -> None:
    q = WorkQueue()
    q.add("a")
    await trio.sleep(2)
    key = await q.get()
    await trio.sleep(3)
    stats = q.statistics()
    assert stats["queue_latency_sum"] == pytest.approx(2)
    assert stats["unfinished_work_seconds"] == pytest.approx(3)
    q.done(key)
    stats = q.statistics()
    assert stats["work_duration_sum"] == pytest.approx(3)
    assert stats["depth"] == 0
    assert stats["adds"] == 1


async def test_get_batch_waits_for_one_key_and_takes_at_most_max(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _add_later(q, ["a", "b", "c"], 1.0))
        assert await q.get_batch(2) == ["a", "b"]
        assert trio.current_time() == 1.0
    assert await q.get_batch(10) == ["c"]


async def _add_later(q: WorkQueue, keys: list[str], delay: float) -> None:
    await trio.sleep(delay)
    q.add_many(keys)


async def test_done_many_requeues_the_keys_added_while_they_were_processing() -> None:
    q = WorkQueue()
    q.add_many(["a", "b"])
    keys = await q.get_batch(10)
    q.add("b")
    assert len(q) == 0  # b is processing: it waits for done
    q.done_many(keys)
    assert await q.get_batch(10) == ["b"]


async def test_get_batch_raises_shutdown_once_drained() -> None:
    q = WorkQueue()
    q.add("a")
    q.shut_down()
    assert await q.get_batch(5) == ["a"]
    with pytest.raises(ShutDown):
        await q.get_batch(5)


async def test_statistics_carry_the_per_bucket_histograms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    q.add("a")
    await trio.sleep(0.05)
    key = await q.get()
    await trio.sleep(20)
    q.done(key)
    stats = q.statistics()
    assert stats["queue_latency_buckets"] == [0] * 7 + [1] + [0] * 5
    assert stats["work_duration_buckets"] == [0] * 10 + [1] + [0] * 2


async def test_a_live_change_is_taken_before_a_listed_backlog() -> None:
    q = WorkQueue()
    q.add_many([f"ns/old{i}" for i in range(100)], cause="listed")
    q.add_many_from(["ns/live"], "updated")
    assert await q.get() == "ns/live"
    assert await q.get() == "ns/old0"


async def test_a_resync_does_not_delay_a_requeued_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = WorkQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(q.run)
        q.add_many(["a", "b", "c"], cause="resync")
        q.add_after("x", 1.0)
        await trio.sleep(1.0)
        assert await q.get() == "x"
        q.shut_down()


async def test_low_priority_keys_are_served_while_live_changes_keep_coming(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Aging: a steady stream of live changes never starves the listed backlog."""
    q = WorkQueue(low_every=4)
    q.add_many(["low0", "low1"], cause="listed")
    taken: list[str] = []
    for i in range(12):
        q.add_many_from([f"live{i}", f"live{i}b"], "updated")
        key = await q.get()
        taken.append(key)
        q.done(key)
        await trio.sleep(0.001)
    assert taken.index("low0") == 3
    assert taken.index("low1") == 7


async def test_the_causes_of_a_key_are_readable_while_it_is_processing() -> None:
    q = WorkQueue()
    q.add_many_from(["ns/w"], "updated")
    q.add_many_from(["ns/w"], "updated", via=("ConfigMap", "ns/w-config"))
    q.add_many_from(["ns/w"], "updated", via=("ConfigMap", "ns/w-config"))
    assert q.causes("ns/w") is None
    key = await q.get()
    assert q.causes(key) == ({"updated": 1, "related": 2}, [("ConfigMap", "ns/w-config")], 0)
    q.done(key)
    assert q.causes(key) is None


async def test_an_unknown_cause_is_refused_with_the_known_ones() -> None:
    q = WorkQueue()
    with pytest.raises(ValueError, match='unknown cause "bogus": use one of added, '):
        q.add("a", cause="bogus")
    with pytest.raises(ValueError, match="use added, updated or deleted"):
        q.add_many_from(["a"], "changed")
