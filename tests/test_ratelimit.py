"""Rate limiters from Python: client-go's numbers for the same call sequence."""

from __future__ import annotations

import pytest

from trio_controller._native import WorkQueue
from trio_controller.native import (
    BucketRateLimiter,
    ExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)


def test_the_default_controller_limiter_matches_client_go() -> None:
    limiter = default_controller_rate_limiter()
    # Per-item exponential 5 ms * 2^n, capped at 1000 s.
    waits = [limiter.when("a", 0.0) for _ in range(20)]
    assert waits == pytest.approx([0.005 * 2**n for n in range(18)] + [1000.0, 1000.0])
    assert limiter.num_requeues("a") == 20
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0


def test_the_bucket_takes_over_after_a_burst_of_100() -> None:
    limiter = default_controller_rate_limiter()
    first = [limiter.when(f"k{i}", 0.0) for i in range(100)]
    assert first == pytest.approx([0.005] * 100)
    assert [limiter.when(f"k{i}", 0.0) for i in range(100, 103)] == pytest.approx([0.1, 0.2, 0.3])


def test_a_bucket_refills_at_qps() -> None:
    bucket = BucketRateLimiter(qps=2.0, burst=2)
    assert [bucket.when("x", 0.0) for _ in range(4)] == pytest.approx([0, 0, 0.5, 1.0])
    assert bucket.when("x", 10.0) == 0
    assert bucket.num_requeues("x") == 0


def test_limiter_state_is_shared_with_the_queue_and_max_of() -> None:
    exp = ExponentialFailureRateLimiter(base=1.0, max_delay=60.0)
    combined = MaxOfRateLimiter([exp, BucketRateLimiter(qps=100.0, burst=10)])
    queue = WorkQueue(combined)
    assert isinstance(queue.rate_limiter, RateLimiter)
    queue.add_rate_limited("k", 0.0)
    queue.add_rate_limited("k", 0.0)
    assert exp.num_requeues("k") == 2
    assert combined.num_requeues("k") == 2
    assert queue.next_ready_at() == 1.0
    queue.forget("k")
    assert exp.num_requeues("k") == 0


def test_bad_limiter_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        BucketRateLimiter(qps=0.0)
    with pytest.raises(ValueError):
        BucketRateLimiter(burst=0)
    with pytest.raises(ValueError):
        ExponentialFailureRateLimiter(base=-1.0)
    with pytest.raises(TypeError):
        RateLimiter()  # type: ignore[call-arg]
