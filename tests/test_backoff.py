import random

from trio_controller.cache.backoff import Backoff


def backoff_without_jitter() -> Backoff:
    return Backoff(jitter=0.0)


def test_backoff_doubles_from_800ms_up_to_30s() -> None:
    b = backoff_without_jitter()
    delays = [b.next_delay(now=float(i)) for i in range(8)]
    assert delays == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]


def test_backoff_resets_after_two_quiet_minutes() -> None:
    b = backoff_without_jitter()
    for i in range(5):
        b.next_delay(now=float(i))
    assert b.next_delay(now=4.0 + 119.0) == 25.6
    assert b.next_delay(now=123.0 + 120.0) == 0.8


def test_jitter_stays_within_one_extra_delay() -> None:
    b = Backoff(rng=random.Random(7))
    first = b.next_delay(now=0.0)
    assert 0.8 <= first <= 1.6
    second = b.next_delay(now=1.0)
    assert 1.6 <= second <= 3.2
