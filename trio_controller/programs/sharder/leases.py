"""Shard Lease states: what a shard's Lease says about the shard, at a given time.

    ready      held by the shard (holderIdentity == the Lease's name), not expired
    expired    held by the shard, expired less than leaseDuration ago
    uncertain  held by the shard, expired leaseDuration ago or longer
    dead       released by the shard (holder cleared), or acquired by the sharder
    orphaned   dead for a minute since it expired: the sharder deletes the Lease

Expiry is renewTime + leaseDurationSeconds; a Lease without acquireTime, renewTime or
leaseDurationSeconds counts as expired now with a 15 s duration. These are the original
sharder's states and timings (pkg/sharding/leases), with the same label values.

Only ready shards are on the hash ring. A shard that is expired or uncertain keeps its
objects until the sharder has acquired its Lease (holder `shardlease-controller`, twice
the duration), which makes it dead; then its objects move at once, without a drain. The
original acquires only once a Lease is uncertain; this sharder acquires it as soon as it
is expired: a shard stops reconciling when it has failed to renew for its renew deadline
(10 s), before its Lease expires (15 s), so a shard killed with -9 hands its objects over
about 15 s after its last renewal instead of 30 s.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "DEFAULT_LEASE_DURATION",
    "LEASE_TTL",
    "SHARDER_IDENTITY",
    "Shard",
    "ShardState",
    "Times",
    "parse_micro_time",
    "settle_wait",
    "shard_of",
    "shards_of",
]

DEFAULT_LEASE_DURATION = 15.0
LEASE_TTL = 60.0  # dead → orphaned, counted from expiry
SHARDER_IDENTITY = "shardlease-controller"  # the original's holder for acquired Leases


class ShardState(enum.IntEnum):
    """Ordered as the original orders them (ready is the highest)."""

    UNKNOWN = 0
    ORPHANED = 1
    DEAD = 2
    UNCERTAIN = 3
    EXPIRED = 4
    READY = 5

    @property
    def label(self) -> str:
        """The value of the Lease's `alpha.sharding.timebertt.dev/state` label."""
        return self.name.lower()

    @classmethod
    def from_label(cls, value: str | None) -> ShardState:
        try:
            return cls[(value or "").upper()]
        except KeyError:
            return cls.UNKNOWN

    @property
    def on_ring(self) -> bool:
        """Gets new objects: ready only."""
        return self is ShardState.READY

    @property
    def holds_objects(self) -> bool:
        """Keeps its objects (they move through a drain): ready, expired, uncertain."""
        return self >= ShardState.UNCERTAIN


def parse_micro_time(value: str | None) -> float | None:
    """A Lease MicroTime (`2026-12-07T21:30:39.123456Z`) as Unix seconds; None if absent
    or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Times:
    """A Lease's times at `now` (Unix seconds; durations in seconds)."""

    expiration: float
    lease_duration: float
    to_expired: float
    to_uncertain: float
    to_orphaned: float

    @classmethod
    def of(cls, spec: Mapping[str, Any], now: float) -> Times:
        acquired = parse_micro_time(spec.get("acquireTime"))
        renewed = parse_micro_time(spec.get("renewTime"))
        seconds = spec.get("leaseDurationSeconds")
        if acquired is None or renewed is None or not isinstance(seconds, int):
            expiration, duration = now, DEFAULT_LEASE_DURATION
        else:
            duration = float(seconds)
            expiration = renewed + duration
        to_expired = expiration - now
        return cls(
            expiration=expiration,
            lease_duration=duration,
            to_expired=to_expired,
            to_uncertain=to_expired + duration,
            to_orphaned=to_expired + LEASE_TTL,
        )


@dataclass(frozen=True)
class Shard:
    """One shard as its Lease shows it at some time."""

    name: str
    namespace: str
    state: ShardState
    times: Times
    acquired: float | None = None  # when the holder took the Lease (Unix seconds)

    @property
    def next_change(self) -> float | None:
        """Seconds until the state changes by time alone (None: it will not)."""
        if self.state is ShardState.READY:
            return max(self.times.to_expired, 0.0)
        if self.state is ShardState.EXPIRED:
            return max(self.times.to_uncertain, 0.0)
        if self.state is ShardState.DEAD:
            return max(self.times.to_orphaned, 0.0)
        return None


def shard_of(lease: Mapping[str, Any], now: float) -> Shard:
    """The shard the Lease `lease` (a dict) stands for, at `now` (Unix seconds)."""
    meta = lease.get("metadata") or {}
    spec = lease.get("spec") or {}
    times = Times.of(spec, now)
    name = meta.get("name") or ""
    holder = spec.get("holderIdentity") or ""
    if holder != name:  # released, or acquired by the sharder
        state = ShardState.ORPHANED if times.to_orphaned <= 0 else ShardState.DEAD
    elif times.to_uncertain <= 0:
        state = ShardState.UNCERTAIN
    elif times.to_expired <= 0:
        state = ShardState.EXPIRED
    else:
        state = ShardState.READY
    acquired = parse_micro_time(spec.get("acquireTime"))
    return Shard(name, meta.get("namespace") or "", state, times, acquired)


def shards_of(leases: Iterable[Mapping[str, Any]], now: float) -> dict[str, Shard]:
    """The shards of a ring's Leases, by name."""
    return {shard.name: shard for shard in (shard_of(lease, now) for lease in leases)}


def settle_wait(shards: Iterable[Shard], settle: float, now: float) -> float:
    """Seconds to wait before assigning or moving objects: a shard that joined (acquired
    its Lease) less than `settle` seconds before `now` may have others starting with it,
    and assigning at once would hand them objects they must pass on through drains.
    Measured from the Leases, so a sharder that starts or takes over does not wait for
    shards that joined long ago; never more than `settle`."""
    joined = [s.acquired for s in shards if s.state.on_ring and s.acquired is not None]
    if not joined or settle <= 0:
        return 0.0
    return max(0.0, min(settle, max(joined) + settle - now))
