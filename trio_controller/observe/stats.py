"""Plain counters the hot paths keep, for metrics.py to read at scrape time.

No Prometheus here and no locks (Trio runs one task at a time): a reconcile costs one
`bisect` and two additions, a request a few dictionary updates.

    stats = ReconcileStats()
    stats.observe(0.002)          # one reconcile finished (success unless counted below)
    stats.errors += 1             # ...that one failed
    stats.requeues += 1           # ...or asked to be requeued (rate limited)
    stats.requeues_after += 1     # ...or to be looked at again after some seconds
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

__all__ = [
    "RECONCILE_TIME_BUCKETS",
    "REQUEST_DURATION_BUCKETS",
    "Histogram",
    "ReconcileStats",
    "cumulative_buckets",
]

# controller-runtime's controller_runtime_reconcile_time_seconds buckets.
RECONCILE_TIME_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7,
    0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0,
    10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0,
)  # fmt: skip
# client-go's rest_client_request_duration_seconds buckets.
REQUEST_DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class Histogram:
    """Counts per bucket and the sum: bucket `i` counts the values `v` with
    `bounds[i - 1] < v <= bounds[i]` (Prometheus' `le`), one more bucket those above
    every bound. The native queue's duration histograms (rust/src/queue) keep the same
    layout, so `cumulative_buckets` reads both."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose bound is `>= value`."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """How many values were observed."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """Prometheus buckets: `(le, observations <= le)`, ending with `inf`."""
        return cumulative_buckets(self.bounds, self.counts)


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[float, int]]:
    """Prometheus buckets `(le, observations <= le)`, ending with `inf`, from counts per
    bucket laid out as `Histogram.counts` (one more count than `bounds`)."""
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"{len(bounds)} bounds need {len(bounds) + 1} counts, not {len(counts)}")
    out = []
    total = 0
    for bound, n in zip((*bounds, math.inf), counts, strict=True):
        total += n
        out.append((bound, total))
    return out


class ReconcileStats:
    """One controller's reconciles: every finished one is observed, failures and
    requeues counted (controller-runtime's results: error, requeue, requeue_after).

    Successes are the rest, so the common path adds one observation only.
    """

    __slots__ = ("errors", "requeues", "requeues_after", "time")

    def __init__(self) -> None:
        self.time = Histogram(RECONCILE_TIME_BUCKETS)
        self.errors = 0
        self.requeues = 0
        self.requeues_after = 0

    def observe(self, seconds: float) -> None:
        """One reconcile finished after `seconds`."""
        self.time.observe(seconds)

    @property
    def successes(self) -> int:
        return max(0, self.time.count - self.errors - self.requeues - self.requeues_after)
