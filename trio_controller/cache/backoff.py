"""Retry policy for the reflector: exponential backoff with jitter, reset after quiet.

The numbers are client-go's reflector defaults (0.8 s doubling to 30 s, full jitter,
reset after two minutes without errors). The policy only computes delays; the caller
sleeps, so `trio.testing.MockClock` drives it in tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.8
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 1.0
    reset_after: float = 120.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    _current: float = field(default=0.0, init=False)
    _last_failure: float | None = field(default=None, init=False)

    def next_delay(self, now: float) -> float:
        """The delay before the next attempt, after a failure at `now`."""
        if self._last_failure is not None and now - self._last_failure >= self.reset_after:
            self._current = 0.0
        self._current = (
            self.initial if self._current == 0.0 else min(self._current * self.factor, self.maximum)
        )
        self._last_failure = now
        return self._current * (1.0 + self.jitter * self.rng.random())

    def reset(self) -> None:
        """Forget past failures (a healthy period has passed)."""
        self._current = 0.0
        self._last_failure = None
