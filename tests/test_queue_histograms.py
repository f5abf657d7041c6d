"""Per-bucket workqueue histograms: controller-runtime's ExponentialBuckets(10e-9, 10, 12)
counted in Rust, not cumulative, the 13th bucket above 1000 s (+Inf)."""

from __future__ import annotations

from itertools import accumulate

import pytest

from trio_controller._native import WORKQUEUE_BUCKETS, WorkQueue


def test_the_bounds_are_go_exponential_buckets_to_the_bit() -> None:
    assert WORKQUEUE_BUCKETS == (
        1e-08,
        1e-07,
        1e-06,
        9.999999999999999e-06,
        9.999999999999999e-05,
        0.001,
        0.01,
        0.1,
        1.0,
        10.0,
        100.0,
        1000.0,
    )
    bound, expected = 10e-9, []
    for _ in range(12):
        expected.append(bound)
        bound *= 10
    assert list(WORKQUEUE_BUCKETS) == expected


def test_an_empty_queue_has_thirteen_empty_buckets_per_histogram() -> None:
    m = WorkQueue().metrics(0.0)
    assert m["queue_latency_buckets"] == [0] * 13
    assert m["work_duration_buckets"] == [0] * 13


def one(latency: float, work: float, start: float = 100.0) -> dict:
    """Metrics of a queue that saw one key wait `latency` and be worked on for `work`."""
    q = WorkQueue()
    q.add("k", start)
    assert q.get_nowait(start + latency) == "k"
    q.done("k", start + latency + work)
    return q.metrics(start + latency + work)


def only(index: int) -> list[int]:
    return [1 if i == index else 0 for i in range(13)]


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (0.0, 0),
        (1e-08, 0),  # equal to the bound: in it (le)
        (5e-08, 1),
        (0.5, 8),
        (1.0, 8),
        (1.5, 9),
        (999.0, 11),
        (1000.0, 11),
        (1000.001, 12),  # above every bound: +Inf
        (86400.0, 12),
    ],
)
def test_an_observation_lands_in_the_first_bucket_whose_bound_is_at_least_it(
    seconds: float, bucket: int
) -> None:
    m = one(seconds, seconds, start=0.0)
    assert m["queue_latency_buckets"] == only(bucket)
    assert m["work_duration_buckets"] == only(bucket)


def test_a_latency_of_ten_microseconds_is_above_gos_9_999999999999999e_06_bound() -> None:
    m = one(1e-05, 0.0, start=0.0)
    assert m["queue_latency_buckets"] == only(4)
    assert m["work_duration_buckets"] == only(0)


def test_buckets_count_each_observation_once_and_sum_to_the_count() -> None:
    q = WorkQueue()
    for key in "abcd":
        q.add(key, 0.0)
    assert q.get_nowait(0.002) == "a"  # waited 2 ms
    assert q.get_nowait(0.05) == "b"  # 50 ms
    assert q.get_nowait(3.0) == "c"  # 3 s
    assert q.get_nowait(2000.0) == "d"  # 2000 s
    q.done("a", 0.002 + 0.0003)  # worked 0.3 ms
    q.done("b", 0.05 + 0.0003)  # 0.3 ms
    q.done("c", 3.0 + 40.0)  # 40 s
    m = q.metrics(2000.0)  # d still processing: not observed yet
    assert m["queue_latency_buckets"] == [0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1]
    assert m["work_duration_buckets"] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0]
    assert sum(m["queue_latency_buckets"]) == m["queue_latency_count"] == 4
    assert sum(m["work_duration_buckets"]) == m["work_duration_count"] == 3
    assert m["queue_latency_sum"] == pytest.approx(2003.052)
    assert m["work_duration_sum"] == pytest.approx(40.0006)


def test_a_key_requeued_while_processing_is_observed_again_on_each_hand_out() -> None:
    q = WorkQueue()
    q.add("k", 0.0)
    assert q.get_nowait(0.5) == "k"  # 0.5 s
    q.add("k", 1.0)  # dirty again while processing: latency counts from here
    q.done("k", 2.0)  # worked 1.5 s
    assert q.get_nowait(2.0) == "k"  # waited 1 s
    q.done("k", 2.00005)  # 50 µs
    m = q.metrics(3.0)
    assert m["queue_latency_buckets"] == only(8)[:8] + [2] + [0] * 4
    assert m["work_duration_buckets"] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]


def test_cumulative_prometheus_buckets_come_from_the_counts_and_bounds() -> None:
    """What the collector does: running sums, one `le` per bound, then +Inf = count."""
    m = one(0.05, 20.0)
    cumulative = list(accumulate(m["queue_latency_buckets"]))
    pairs = list(zip([*WORKQUEUE_BUCKETS, float("inf")], cumulative, strict=True))
    assert pairs[6] == (0.01, 0)
    assert pairs[7] == (0.1, 1)
    assert pairs[-1] == (float("inf"), 1)
    assert cumulative[-1] == m["queue_latency_count"]
