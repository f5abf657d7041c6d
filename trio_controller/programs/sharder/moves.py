"""Moving objects between shards: what to do with one object (`action`, pure), the two
label writes, and a resync of a whole ring (`Mover`).

    action(...) -> None         on its desired shard, or nothing to do yet
                   ("drain", s) its shard is ready: add the drain label, the shard lets go
                   ("move", s)  unassigned, or its shard is dead or gone: label it s now

A controlled object is never drained (its controller is the synchronisation point, as in
the original sharder): it moves at once, and a resync moves every controlled object
before it looks at the ring's own objects. An object whose shard is expired or uncertain
is left until the sharder has acquired that shard's Lease (dead). Every write carries the
resourceVersion read: a stale read is a conflict, never an overwrite.

Failover first: a resync given shards that just died (`evacuate`) first lists only their
objects (a label selector: a few hundred objects instead of the whole ring) and moves
them, the controlled ones first as in the full pass, and only then runs the full resync.
(Moving the ring's own objects first was tried and measured slower on the benchmark: each
new shard then reconciled every Widget twice, once without its ConfigMap in the cache (a
create answering 409 and a read) and again when the ConfigMap arrived, and those requests
competed with the sharder's writes: 1,716 moves took 63 s instead of 25 s at load 7-8.)
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Container,
    Iterable,
    Mapping,
)
from dataclasses import dataclass
from typing import Any

import orjson
import trio

from trio_controller import errors
from trio_controller.api.resource import Resource
from trio_controller.api.verbs import Api
from trio_controller.cache.reflector import METADATA_LIST_ACCEPT
from trio_controller.programs.sharder.leases import Shard, ShardState
from trio_controller.programs.sharder.ring import HashRing, controller_key, key_for_object
from trio_controller.runtime.sharding import drain_label, shard_label
from trio_controller.transport.client import Client

__all__ = [
    "Fence",
    "Holds",
    "Mover",
    "Resynced",
    "RingResource",
    "action",
    "first_leaf",
    "in_namespaces",
]

log = logging.getLogger(__name__)

LIST_PAGE = 500

Work = tuple[str, "RingResource", dict[str, Any], str]


@dataclass(frozen=True)
class RingResource:
    """One resource of a ring. `owners` is None for a ring resource (hashed by its own
    key); for a controlled resource, the (group, kind) of the ring resources that control
    it (hashed by its controller's key)."""

    resource: Resource
    owners: frozenset[tuple[str, str]] | None = None

    @property
    def controlled(self) -> bool:
        return self.owners is not None

    def hash_key(self, meta: Mapping[str, Any]) -> str:
        """ "" when the object is not sharded (a controlled object without a controller
        of the ring)."""
        if self.owners is None:
            r = self.resource
            return key_for_object(r.group, r.kind, meta.get("namespace"), meta.get("name", ""))
        return controller_key(meta, self.owners)


@dataclass
class Resynced:
    """What one resync did. `conflicts`: writes that failed and must be tried again (the
    ring resyncs again shortly); `raced`: objects that were unassigned when listed and had
    changed by the time of the write (the assigners' watch of unassigned objects has them:
    assigned meanwhile, or to be assigned from that watch), no reason to list again."""

    moved: int = 0
    drained: int = 0
    conflicts: int = 0
    raced: int = 0


def action(
    ring: str,
    rr: RingResource,
    meta: Mapping[str, Any],
    hash_ring: HashRing,
    shards: Mapping[str, Shard],
) -> tuple[str, str] | None:
    """What the sharder does with the object of metadata `meta` (see the module)."""
    hash_key = rr.hash_key(meta)
    if not hash_key:
        return None
    desired = hash_ring.shard_for(hash_key)
    labels = meta.get("labels") or {}
    current = labels.get(shard_label(ring)) or ""
    if not desired or desired == current:
        return None
    holder = shards.get(current) if current else None
    if holder is not None and holder.state.holds_objects:
        if holder.state is not ShardState.READY:
            return None  # expired or uncertain: moved once the shard is dead
        if not rr.controlled:
            if drain_label(ring) in labels:
                return None  # the drain is under way
            return ("drain", desired)
    return ("move", desired)


def in_namespaces(
    rr: RingResource, meta: Mapping[str, Any], namespaces: Container[str] | None
) -> bool:
    """Whether the object of `meta` is sharded by a ring that selects `namespaces` (None:
    every namespace; cluster-scoped objects always are)."""
    if namespaces is None or not rr.resource.namespaced:
        return True
    return meta.get("namespace") in namespaces


#: Hold a shard's Lease for the sharder (leasekeeper.LeaseKeeper.fence, its shard name
#: bound): the wall-clock time the hold lasts until; None when the shard holds it.
Fence = Callable[[str], Awaitable[float | None]]
# A move without a drain is written only with this much of the hold left.
WRITE_MARGIN = 5.0


class Holds:
    """The sharder's holds on the Leases of the shards one resync moves objects away from
    without a drain (dead, released or without a Lease): taken once per shard, renewed
    when little is left, so every such write happens while the old shard cannot run."""

    def __init__(self, fence: Fence, now: Callable[[], float]) -> None:
        self._fence = fence
        self._now = now
        self._until: dict[str, float | None] = {}
        self._locks: dict[str, trio.Lock] = {}

    async def held(self, shard: str) -> bool:
        """Whether the sharder holds `shard`'s Lease for `WRITE_MARGIN` seconds more."""
        async with self._locks.setdefault(shard, trio.Lock()):
            until = self._until.get(shard, 0.0)
            if until is not None and until - self._now() <= WRITE_MARGIN:
                until = self._until[shard] = await self._fence(shard)
                if until is None:
                    log.info(
                        "Shard %s's Lease cannot be held by the sharder (the shard is back, "
                        "or the Lease changed): its objects stay for now",
                        shard,
                    )
            return until is not None and until - self._now() > WRITE_MARGIN


def first_leaf(exc: BaseException) -> BaseException:
    """The first exception of a (nested) group."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class Mover:
    """The label writes for ring `ring`, and its resyncs (`concurrent` writes at once)."""

    def __init__(self, client: Client, ring: str, *, concurrent: int = 100) -> None:
        self.client = client
        self.ring = ring
        self.shard_label = shard_label(ring)
        self.drain_label = drain_label(ring)
        self.concurrent = max(1, concurrent)
        #: Writes done, by ("assignments" | "movements" | "drains", group, resource).
        self.counts: Counter[tuple[str, str, str]] = Counter()

    async def assign(self, rr: RingResource, meta: Mapping[str, Any], shard: str) -> bool:
        """Label the unassigned object with `shard`; False on a conflict."""
        labels = {self.shard_label: shard, self.drain_label: None}
        return await self._patch(rr, meta, labels, "assignments")

    async def move(self, rr: RingResource, meta: Mapping[str, Any], shard: str) -> bool:
        """Label the object with `shard` (and drop a drain label); False on a conflict."""
        labels = {self.shard_label: shard, self.drain_label: None}
        return await self._patch(rr, meta, labels, "movements")

    async def drain(self, rr: RingResource, meta: Mapping[str, Any]) -> bool:
        """Add the drain label; False on a conflict."""
        return await self._patch(rr, meta, {self.drain_label: "true"}, "drains")

    async def _patch(
        self, rr: RingResource, meta: Mapping[str, Any], labels: dict[str, Any], kind: str
    ) -> bool:
        namespace = meta.get("namespace") if rr.resource.namespaced else None
        api = Api(self.client, rr.resource, namespace)
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"), "labels": labels}}
        try:
            await api.patch(meta["name"], patch)
        except (errors.Conflict, errors.NotFound):
            return False
        self.counts[kind, rr.resource.group, rr.resource.plural] += 1
        return True

    async def resync(
        self,
        resources: Iterable[RingResource],
        hash_ring: HashRing,
        shards: Mapping[str, Shard],
        *,
        evacuate: Collection[str] = (),
        namespaces: Container[str] | None = None,
        holds: Holds | None = None,
    ) -> Resynced:
        """List every object of `resources` (metadata only) and drain or move those not
        on their desired shard. A failed list raises (as itself).

        First, the objects of the shards named in `evacuate` (dead or gone: their objects
        move at once) are listed by their shard label and moved, before the full pass
        lists the whole ring.

        In each pass, controlled objects go first, and their writes are done before any
        object of the ring's own resources is listed: a shard that gets an object finds
        the objects it controls in its cache already, instead of creating them again
        (409) until they arrive.

        With `namespaces`, namespaced objects in other namespaces are left alone.

        With `holds`, an object leaves a shard that does not hold its objects (dead,
        released, no Lease) only while the sharder holds that shard's Lease (`Holds`): a
        shard restarted under the same name keeps its objects, and the write counts as a
        conflict, so the ring resyncs again and drains them."""
        started = time.perf_counter()
        result = Resynced()
        resources = list(resources)
        own = [rr for rr in resources if not rr.controlled]
        controlled = [rr for rr in resources if rr.controlled]
        gone = frozenset(evacuate)
        if gone:
            for batch in (controlled, own):
                await self._resync_batch(
                    batch, hash_ring, shards, result, namespaces, holds, only=gone
                )
            log.info(
                "Moved the objects of ring %s's dead shards %s: %d moved, %d conflicts, %.2fs",
                self.ring, ", ".join(sorted(gone)), result.moved, result.conflicts,
                time.perf_counter() - started,
            )  # fmt: skip
        for batch in (controlled, own):
            await self._resync_batch(batch, hash_ring, shards, result, namespaces, holds)
        log.info(
            "Resynced ring %s (ready shards: %s): %d moved, %d drained, %d conflicts, "
            "%d assigned meanwhile, %.2fs",
            self.ring,
            ", ".join(hash_ring.nodes),
            result.moved,
            result.drained,
            result.conflicts,
            result.raced,
            time.perf_counter() - started,
        )
        return result

    async def _resync_batch(
        self,
        resources: list[RingResource],
        hash_ring: HashRing,
        shards: Mapping[str, Shard],
        result: Resynced,
        namespaces: Container[str] | None,
        holds: Holds | None,
        *,
        only: frozenset[str] = frozenset(),
    ) -> None:
        """List `resources` and do their writes, `concurrent` at once, until all are done.
        With `only` (shard names), just the objects labelled for one of those shards;
        with `namespaces`, just the namespaced objects in those namespaces."""
        if not resources:
            return
        selector = f"{self.shard_label} in ({','.join(sorted(only))})" if only else None
        send, receive = trio.open_memory_channel[Work](self.concurrent)
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self.concurrent):
                    nursery.start_soon(self._work, receive.clone(), result, shards, holds)
                receive.close()
                async with send:
                    for rr in resources:
                        async for meta in self.list_metadata(rr.resource, selector):
                            if not self._wanted(rr, meta, only, namespaces):
                                continue
                            what = action(self.ring, rr, meta, hash_ring, shards)
                            if what is not None:
                                await send.send((what[0], rr, meta, what[1]))
        except BaseExceptionGroup as group:
            raise first_leaf(group) from None

    def _wanted(
        self,
        rr: RingResource,
        meta: Mapping[str, Any],
        only: frozenset[str],
        namespaces: Container[str] | None,
    ) -> bool:
        """Whether a resync looks at the object: on one of the shards `only` (if any), in
        one of `namespaces` (if any, and if it is namespaced)."""
        if only and (meta.get("labels") or {}).get(self.shard_label) not in only:
            return False
        return in_namespaces(rr, meta, namespaces)

    async def _work(
        self,
        receive: trio.MemoryReceiveChannel[Work],
        result: Resynced,
        shards: Mapping[str, Shard],
        holds: Holds | None,
    ) -> None:
        async with receive:
            async for what, rr, meta, desired in receive:
                try:
                    current = (meta.get("labels") or {}).get(self.shard_label) or ""
                    holder = shards.get(current)
                    unheld = holder is None or not holder.state.holds_objects
                    if (
                        what == "move"
                        and current
                        and unheld
                        and holds is not None
                        and not await holds.held(current)
                    ):
                        result.conflicts += 1  # resync again: drain it if its shard is back
                        continue
                    if what == "drain":
                        done = await self.drain(rr, meta)
                        result.drained += done
                    else:
                        done = await self.move(rr, meta, desired)
                        result.moved += done
                    if done:
                        continue
                    if (meta.get("labels") or {}).get(self.shard_label):
                        result.conflicts += 1
                    else:
                        result.raced += 1
                except errors.TrioControllerError as exc:
                    result.conflicts += 1
                    log.info("Could not %s %s %s: %s", what, rr.resource.kind,
                             meta.get("name"), exc)  # fmt: skip

    async def list_metadata(
        self, resource: Resource, label_selector: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of `resource` (all namespaces; those matching `label_selector`) as
        metadata, page by page, first from the watch cache (resourceVersion=0: no quorum
        read of etcd)."""
        path = resource.path()
        first: dict[str, Any] = {"limit": LIST_PAGE}
        if label_selector:
            first["labelSelector"] = label_selector
        params: dict[str, Any] = {**first, "resourceVersion": "0"}
        while True:
            try:
                page = orjson.loads(
                    await self.client.list_page(path, params, accept=METADATA_LIST_ACCEPT)
                )
            except errors.Gone:
                if "continue" not in params:
                    raise
                params = dict(first)  # the token expired: start again
                continue
            for item in page.get("items") or ():
                yield item.get("metadata") or {}
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            params = {**first, "continue": token}
