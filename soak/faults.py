"""The fault schedule: a seeded list of (time, fault), in three lanes that run side by side.

- proxy lane: `reset`, `half-close`, `stall` (a few seconds), `slow` (a slow reader),
  `stall-reset` (a stall long enough for etcd compaction to pass the controller's
  resourceVersion, then a reset: the resumed watch gets a real 410);
- storm lane: `storm` (readers fill --max-requests-inflight: the controller's lists get
  real 429s); a storm also follows each `stall-reset`, when a relist is due;
- crash lane: `apiserver-kill` (SIGKILL, restart; etcd keeps the data) every one to two
  minutes, and `controller-restart` (SIGTERM, a pause while the writers go on, start
  again with the same --cache-snapshot) at 50%, 70% and 85% of the run.

A short soak (under two minutes, as in CI) gets each kind at least once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PROXY_KINDS = ("reset", "half-close", "stall", "slow", "stall-reset")
PROXY_WEIGHTS = (4, 2, 2, 2, 2)
STALL_RESET_SECONDS = 14.0  # > 2 compaction intervals of 5 s: the rv is compacted away
SHORT = 120.0


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the churn starts
    kind: str
    seconds: float = 0.0  # how long (stall, slow, storm, controller down)


def _proxy_fault(rng: random.Random, at: float, kind: str) -> Fault:
    if kind == "stall":
        return Fault(at, kind, rng.uniform(2.0, 6.0))
    if kind == "slow":
        return Fault(at, kind, rng.uniform(3.0, 8.0))
    if kind == "stall-reset":
        return Fault(at, kind, STALL_RESET_SECONDS)
    return Fault(at, kind)


def schedule(seed: int, duration: float) -> list[Fault]:
    """Every fault of a soak whose churn lasts `duration` seconds, sorted by time.
    Nothing is scheduled in the last 10% (at least 3 s): the end is quiet."""
    rng = random.Random(seed)
    end = duration - max(3.0, duration * 0.1)
    faults: list[Fault] = []
    if duration < SHORT:
        # Each kind once: the apiserver crash early (it takes ~10 s to come back), the
        # other proxy faults around it, a stall-reset (410, relist) with a 429 storm on
        # its relist, the controller restart late, and one reset for the restarted run.
        step = end / 10
        kinds = [k for k in PROXY_KINDS if k != "stall-reset"]
        rng.shuffle(kinds)
        for at, kind in zip((0.3, 1.0, 1.7, 7.3), kinds, strict=True):
            faults.append(_proxy_fault(rng, step * at, kind))
        faults.append(Fault(step * 1.2, "storm", 3.0))
        faults.append(Fault(step * 2.0, "apiserver-kill"))
        faults.append(_proxy_fault(rng, step * 4.3, "stall-reset"))
        faults.append(Fault(step * 4.3 + STALL_RESET_SECONDS, "storm", 4.0))
        faults.append(Fault(step * 8.0, "controller-restart", 3.0))
        faults.append(Fault(step * 9.2, "reset"))
        return sorted((f for f in faults if f.at < end), key=lambda f: f.at)
    t = 5.0
    while t < end:
        kind = rng.choices(PROXY_KINDS, PROXY_WEIGHTS)[0]
        fault = _proxy_fault(rng, t, kind)
        faults.append(fault)
        if kind == "stall-reset":
            faults.append(Fault(t + fault.seconds, "storm", rng.uniform(2.0, 5.0)))
        t += fault.seconds + rng.uniform(4.0, 12.0)
    t = rng.uniform(15.0, 30.0)
    while t < end:
        faults.append(Fault(t, "storm", rng.uniform(3.0, 8.0)))
        t += rng.uniform(20.0, 45.0)
    # Controller restarts at fixed fractions, so the first run lasts half the soak (a
    # long window to judge RSS and fds); apiserver kills every one to two minutes.
    restarts = [end * fraction for fraction in (0.5, 0.7, 0.85)]
    faults += [Fault(at, "controller-restart", rng.uniform(2.0, 8.0)) for at in restarts]
    t = 45.0
    while t < end:
        if all(abs(t - at) > 20.0 for at in restarts):
            faults.append(Fault(t, "apiserver-kill"))
        t += rng.uniform(60.0, 120.0)
    return sorted(faults, key=lambda f: f.at)


def lane(fault: Fault) -> str:
    if fault.kind in PROXY_KINDS:
        return "proxy"
    return "storm" if fault.kind == "storm" else "crash"
