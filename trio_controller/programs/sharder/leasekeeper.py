"""The shard Lease controller: keeps each shard Lease's state label and acts on the state.

    ready      requeue at expiry
    expired    acquire the Lease (holder `shardlease-controller`, twice the duration,
    uncertain  guarded by the resourceVersion): the shard is dead, its objects move at once
    dead       requeue when it becomes orphaned
    orphaned   delete the Lease (guarded by its resourceVersion)

The fence (`fence`): the sharder moves a shard's objects without a drain only while it
holds that shard's Lease itself, for `FENCE_MIN` seconds more at least: a shard
restarted under the same name cannot take the Lease back before the hold ends, and the
hold's end is an absolute time, so a stale view of the Lease cannot make it unsafe. A
released Lease, a hold that ran out, or no Lease at all is taken (again) first, guarded
by the resourceVersion the sharder saw (or by the name, for a create): if the shard came
back meanwhile, the write fails and its objects stay, to be drained.

Leases are those labelled `alpha.sharding.timebertt.dev/controllerring` whose ring
exists. `reconcile(key)` returns the seconds until the state changes by time alone, so
the controller looks again right then. `now()` is the wall clock (Lease times are wall
clock MicroTime); tests give a function of Trio's clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from trio_controller import errors
from trio_controller.api.resource import LEASES
from trio_controller.programs.sharder.leases import (
    DEFAULT_LEASE_DURATION,
    SHARDER_IDENTITY,
    ShardState,
    shard_of,
)
from trio_controller.runtime.sharding import LABEL_CONTROLLER_RING, LABEL_STATE
from trio_controller.transport.client import Client

__all__ = ["LeaseKeeper", "micro_time"]

log = logging.getLogger(__name__)

# Looked at again just after a state changes, so the clock has passed the boundary.
MARGIN = 0.05
# A hold with less left than this is renewed before objects move under it.
FENCE_MIN = 10.0


def micro_time(unix: float) -> str:
    """Unix seconds as a Lease MicroTime."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseKeeper:
    """`reconcile(key)` for shard Leases read from `store` (a `Store`, or anything with
    `get(key)`); `ring_exists(name)` says whether a ControllerRing of that name exists."""

    def __init__(
        self,
        client: Client,
        store: Any,
        ring_exists: Callable[[str], bool],
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.store = store
        self.ring_exists = ring_exists
        self.now = now
        #: Leases acquired (shards declared dead) and deleted, for logs and tests.
        self.acquired = 0
        self.deleted = 0

    async def reconcile(self, key: str) -> float | None:
        lease = self.store.get(key)
        if lease is None:
            return None
        meta = lease.get("metadata") or {}
        labels = meta.get("labels") or {}
        ring = labels.get(LABEL_CONTROLLER_RING)
        if not ring or not self.ring_exists(ring):
            return None
        now = self.now()
        shard = shard_of(lease, now)
        previous = ShardState.from_label(labels.get(LABEL_STATE))
        path = LEASES.path(meta["namespace"], meta["name"])
        try:
            if shard.state in (ShardState.EXPIRED, ShardState.UNCERTAIN):
                await self._acquire(path, lease, shard.times.lease_duration, now)
                log.info(
                    "Shard %s of ring %s is dead: its lease expired %.1fs ago; moving its objects",
                    shard.name,
                    ring,
                    -shard.times.to_expired,
                )
                return shard.times.lease_duration
            if shard.state is ShardState.ORPHANED:
                await self.client.request_json(
                    "DELETE",
                    path,
                    {
                        "kind": "DeleteOptions",
                        "apiVersion": "v1",
                        "preconditions": {"resourceVersion": meta["resourceVersion"]},
                    },
                )
                self.deleted += 1
                log.info("Deleted the orphaned lease of shard %s of ring %s", shard.name, ring)
                return None
            if previous is not shard.state:
                await self._label(path, meta, shard.state)
                if shard.state is ShardState.READY:
                    log.info("Shard %s of ring %s is ready", shard.name, ring)
                elif shard.state is ShardState.DEAD:
                    log.info("Shard %s of ring %s is gone (lease released)", shard.name, ring)
        except (errors.Conflict, errors.NotFound):
            return None  # a newer Lease (or none) is on its way through the watch
        after = shard.next_change
        return None if after is None else after + MARGIN

    async def fence(self, namespace: str, name: str, ring: str) -> float | None:
        """Hold the Lease of shard `name` of `ring` (in `namespace`) for the sharder:
        the wall-clock time the hold lasts until, at least `FENCE_MIN` seconds from now;
        None when the shard holds its Lease (again) or the write met a newer Lease."""
        now = self.now()
        lease = self.store.get(f"{namespace}/{name}")
        path = LEASES.path(namespace, name)
        try:
            if lease is None:
                return await self._create_held(namespace, name, ring, now)
            shard = shard_of(lease, now)
            if shard.state.holds_objects:
                return None  # the shard's own: its objects go through a drain
            spec = lease.get("spec") or {}
            ours = spec.get("holderIdentity") == SHARDER_IDENTITY
            if ours and shard.times.to_expired > FENCE_MIN:
                return shard.times.expiration
            duration = shard.times.lease_duration / 2 if ours else shard.times.lease_duration
            # A released Lease says 1 s (client-go's release): hold it as a 15 s one.
            duration = max(duration, DEFAULT_LEASE_DURATION)
            await self._acquire(path, lease, duration, now)
            return now + 2 * round(duration)
        except (errors.Conflict, errors.NotFound):
            return None

    async def _create_held(self, namespace: str, name: str, ring: str, now: float) -> float:
        """A Lease for a shard that has none, held by the sharder (dead)."""
        stamp = micro_time(now)
        seconds = 2 * round(DEFAULT_LEASE_DURATION)
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {LABEL_CONTROLLER_RING: ring, LABEL_STATE: "dead"},
            },
            "spec": {
                "holderIdentity": SHARDER_IDENTITY,
                "leaseDurationSeconds": seconds,
                "acquireTime": stamp,
                "renewTime": stamp,
            },
        }
        await self.client.request_json("POST", LEASES.path(namespace), lease)
        self.acquired += 1
        return now + seconds

    async def _label(self, path: str, meta: dict[str, Any], state: ShardState) -> None:
        patch = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "labels": {LABEL_STATE: state.label},
            }
        }
        await self.client.request_json(
            "PATCH", path, patch, content_type="application/merge-patch+json"
        )

    async def _acquire(self, path: str, lease: dict[str, Any], duration: float, now: float) -> None:
        """Take the Lease over (holder `shardlease-controller`, twice its duration),
        labelled dead, in one update guarded by its resourceVersion."""
        spec = lease.get("spec") or {}
        stamp = micro_time(now)
        meta = lease["metadata"]
        acquired = {
            **lease,
            "metadata": {**meta, "labels": {**(meta.get("labels") or {}), LABEL_STATE: "dead"}},
            "spec": {
                **spec,
                "holderIdentity": SHARDER_IDENTITY,
                "leaseDurationSeconds": 2 * round(duration),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1,
            },
        }
        await self.client.request_json("PUT", path, acquired)
        self.acquired += 1
