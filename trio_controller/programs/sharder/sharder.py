"""The sharder: assigns the objects of each ControllerRing to its live shards, and moves
them when the shards change, so that no object is reconciled by two shards at once.

    Sharder(client, namespace="operators").run()   # while leading, in a nursery

    ControllerRings ──▶ ring controller: resolve resources, status, resync on change
    shard Leases   ──┬─▶ Lease controller (leasekeeper.py): state label, acquire, delete
     (in namespace)  └─▶ ring controller (the ring's membership may have changed)
    objects without the shard label (metadata-only, per ring resource)
                    ──▶ assign: label with the shard the hash ring names

Assignment: an object without `shard.alpha.sharding.timebertt.dev/<ring>` is labelled
with the ready shard its hash key falls on (ring.py); the watch sees only unassigned
objects and only their metadata, so the sharder's memory does not grow with the objects
it shards. With no ready shard the object waits; it is assigned once one is ready.

Resync (when the ring's ready or holding shards change, and every `sync_period`): a
metadata-only list of every ring resource (from the watch cache, resourceVersion=0);
each object not on its desired shard is drained (its shard is ready), moved at once (its
shard is dead or gone, or it has none; controlled objects always), or left until its
expired shard is declared dead (moves.py). Every write carries the resourceVersion read;
a conflict makes the ring resync again shortly.

Each ring's assigners run on an informer factory of their own: a ring whose resources
cannot be watched (no RBAC) says so in its status and is retried, and no other ring stops.

Namespaces (a ring's `spec.namespaceSelector`, namespaces.py): only objects in selected
namespaces are assigned or moved, as in the original sharder; objects in namespaces that
stop matching keep their labels and are left alone. The selection is kept from a
metadata-only watch of the Namespaces (run only for rings with a selector, so a sharder
without such rings needs no RBAC for Namespaces); a change of it resyncs the ring.

Settling: while a ready shard acquired its Lease less than `settle` seconds ago, neither
assignment nor resync runs (leases.settle_wait): shards started together join within a
moment of each other, and the first one must not get every object only to drain them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from trio_controller import errors
from trio_controller.api.discovery import Discovery, ResourceNotFound
from trio_controller.api.resource import LEASES, NAMESPACES, Resource
from trio_controller.api.verbs import Api
from trio_controller.cache.factory import SharedInformerFactory
from trio_controller.cache.options import InformerOptions
from trio_controller.programs.sharder.crd import CONTROLLER_RINGS
from trio_controller.programs.sharder.leasekeeper import LeaseKeeper
from trio_controller.programs.sharder.leases import Shard, settle_wait, shards_of
from trio_controller.programs.sharder.moves import (
    Holds,
    Mover,
    Resynced,
    RingResource,
    first_leaf,
    in_namespaces,
)
from trio_controller.programs.sharder.namespaces import NamespaceSelector
from trio_controller.programs.sharder.ring import HashRing
from trio_controller.runtime.controller import Controller, ControllerOptions
from trio_controller.runtime.predicates import generation_changed
from trio_controller.runtime.sharding import (
    LABEL_CONTROLLER_RING,
    LABEL_STATE,
    drain_label,
    shard_label,
)
from trio_controller.transport.client import Client

__all__ = ["Sharder", "shard_changed"]

log = logging.getLogger(__name__)

SYNC_PERIOD = 300.0  # the original's default: every 5 minutes
CONCURRENT_MOVES = 100
CONFLICT_RETRY = 1.0  # a resync that met conflicts runs again after this
RESOLVE_RETRY = 0.5  # a ring whose resources are unknown is looked at again after this,
RESOLVE_RETRY_MAX = 30.0  # doubling up to this (its shards' Lease changes look sooner)
SETTLE = 5.0  # after a shard joins, wait this long for others joining with it


@dataclass
class _Ring:
    """What the sharder keeps for one ControllerRing."""

    name: str
    resources: tuple[RingResource, ...] = ()
    controllers: dict[Resource, Controller] = field(default_factory=dict)
    #: (ready shards, shards holding objects, selected namespaces) at the last resync.
    membership: tuple[frozenset[str], frozenset[str], frozenset[str] | None] | None = None
    synced_at: float = -math.inf
    hash_ring: HashRing = field(default_factory=HashRing)
    scope: trio.CancelScope | None = None  # the assigners' task
    error: str | None = None  # why the assigners are not running
    resync_error: str | None = None  # why the last resync failed
    retry_at: float = -math.inf  # no resync before (after a failed one)
    retry_delay: float = 0.5
    resolve_error: str | None = None  # why the ring's resources are unknown
    resolve_delay: float = RESOLVE_RETRY
    resolved_for: tuple[str, int] | None = None  # (uid, generation) `resources` are for
    namespace_selector: NamespaceSelector | None = None  # None: every namespace
    namespaces: set[str] = field(default_factory=set)  # selected (with a selector)
    namespace_watch: Controller | None = None
    mover: Mover = field(init=False)

    @property
    def shard_label(self) -> str:
        return shard_label(self.name)

    @property
    def drain_label(self) -> str:
        return drain_label(self.name)

    def selects(self, rr: RingResource, meta: dict[str, Any]) -> bool:
        """Whether the object of `meta` is in a namespace the ring shards."""
        return in_namespaces(rr, meta, None if self.namespace_selector is None else self.namespaces)

    @property
    def selected(self) -> frozenset[str] | None:
        """The selected namespaces; None: every namespace."""
        return None if self.namespace_selector is None else frozenset(self.namespaces)


def shard_changed(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    """For the ring controller's Lease watch: an update that may change the ring's shards
    (the Lease's ring label, its holder, its duration); not a renewal, which only moves
    renewTime, nor the state label the Lease controller writes: the ring reads a shard's
    state from the Lease's times and holder (a state that changes by time alone shows as
    the Lease controller's acquisition, a new holder), and waking on the label too woke
    the ring twice for every shard that joins."""

    def shard(lease: dict[str, Any] | None) -> tuple[Any, ...]:
        meta, spec = (lease or {}).get("metadata") or {}, (lease or {}).get("spec") or {}
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != LABEL_STATE}
        return (
            labels,
            meta.get("deletionTimestamp"),
            spec.get("holderIdentity"),
            spec.get("leaseDurationSeconds"),
        )

    return shard(old) != shard(new)


class Sharder:
    """Runs the ring controller, the Lease controller and the assigners (see the module
    docstring) until cancelled. Shard Leases are watched in `namespace`.

    `now()` is the wall clock the Lease times are compared with."""

    def __init__(
        self,
        client: Client,
        *,
        namespace: str,
        sync_period: float = SYNC_PERIOD,
        concurrent_moves: int = CONCURRENT_MOVES,
        settle: float = SETTLE,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.sync_period = sync_period
        self.settle = settle
        self.concurrent_moves = max(1, concurrent_moves)
        self.now = now
        self.discovery = Discovery(client)
        self.factory = SharedInformerFactory(client)
        self.rings_informer = self.factory.informer(CONTROLLER_RINGS)
        self.leases_informer = self.factory.informer(
            LEASES,
            namespace=namespace,
            options=InformerOptions(label_selector=LABEL_CONTROLLER_RING),
        )
        self.keeper = LeaseKeeper(client, self.leases_informer.store, self._ring_exists, now=now)
        self.lease_controller = Controller(
            client,
            LEASES,
            self.keeper.reconcile,
            namespace=namespace,
            label_selector=LABEL_CONTROLLER_RING,
            factory=self.factory,
            name="ShardLease",
            # Every renewal (each shard's, every 2 s) reconciles its Lease: by design.
            options=ControllerOptions(hot_loop_threshold=None),
        )
        # Its own status writes must not wake it again: only spec changes (and adds,
        # deletes) of a ring do, besides its shards' Leases below.
        self.ring_controller = Controller(
            client, CONTROLLER_RINGS, self.reconcile_ring, factory=self.factory,
            name="ControllerRing", predicates=[generation_changed],
        )  # fmt: skip
        self.ring_controller.watches(
            LEASES,
            self._ring_of_lease,
            namespace=namespace,
            label_selector=LABEL_CONTROLLER_RING,
            predicates=[shard_changed],
        )
        self.rings: dict[str, _Ring] = {}
        self._nursery: trio.Nursery | None = None
        #: Objects labelled by the assigners (watch path) since start.
        self.assigned = 0

    @property
    def controllers(self) -> list[Controller]:
        """Every controller the sharder runs (for metrics and probes)."""
        found = [self.ring_controller, self.lease_controller]
        for ring in self.rings.values():
            found.extend(ring.controllers.values())
            if ring.namespace_watch is not None:
                found.append(ring.namespace_watch)
        return found

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; started once the rings and Leases are synced."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.factory.run)
            await nursery.start(self.lease_controller.run)
            await nursery.start(self.ring_controller.run)
            log.info("Sharder running: shard leases in namespace %s", self.namespace)
            task_status.started()

    def _ring_exists(self, name: str) -> bool:
        return name in self.rings_informer.store

    @staticmethod
    def _ring_of_lease(lease: dict[str, Any]) -> list[str]:
        ring = ((lease.get("metadata") or {}).get("labels") or {}).get(LABEL_CONTROLLER_RING)
        return [ring] if ring else []

    def shards(self, ring: str) -> dict[str, Shard]:
        """The ring's shards as their Leases show them now."""
        store = self.leases_informer.store
        leases = []
        for key in store.list_keys():
            labels = store.labels(key) or {}
            if labels.get(LABEL_CONTROLLER_RING) == ring and (lease := store.get(key)):
                leases.append(lease)
        return shards_of(leases, self.now())

    def settling(self, shards: dict[str, Shard]) -> float:
        """Seconds to wait before assigning or moving (leases.settle_wait)."""
        return settle_wait(shards.values(), self.settle, self.now())

    def _hash_ring(self, ring: _Ring, shards: dict[str, Shard]) -> HashRing:
        ready = sorted(s.name for s in shards.values() if s.state.on_ring)
        if list(ring.hash_ring.nodes) != ready:
            ring.hash_ring = HashRing(ready)
        return ring.hash_ring

    # -- the ring controller -------------------------------------------------------------

    async def reconcile_ring(self, key: str) -> float | None:
        obj = self.rings_informer.store.get(key)
        if obj is None:
            gone = self.rings.pop(key, None)
            if gone is not None:
                if gone.scope is not None:
                    gone.scope.cancel()
                log.info("ControllerRing %s is gone: no longer assigning its objects", key)
            return None
        ring = self.rings.get(key)
        if ring is None:
            ring = self.rings[key] = _Ring(key)
            ring.mover = Mover(self.client, key, concurrent=self.concurrent_moves)
        try:
            resources = await self._resources(ring, obj)
        except errors.TrioControllerError as exc:
            # A ring may name a resource before its CRD is installed: say so (once per
            # reason, and in the status) and look again, never giving up on the ring.
            delay = ring.resolve_delay
            ring.resolve_delay = min(delay * 2, RESOLVE_RETRY_MAX)
            if str(exc) != ring.resolve_error:
                log.warning("Ring %s: %s; trying again", key, exc)
            ring.resolve_error = str(exc)
            await self._status(obj, {}, ready=False, reason="ResourceUnknown", message=str(exc))
            return delay
        if ring.resolve_error is not None:
            log.info("Ring %s: its resources are known now", key)
            ring.resolve_error, ring.resolve_delay = None, RESOLVE_RETRY
        try:
            selector = NamespaceSelector.parse((obj.get("spec") or {}).get("namespaceSelector"))
        except ValueError as exc:
            # Wrong until the ring's spec changes (which reconciles it again).
            log.error("Ring %s: %s", key, exc)
            await self._status(obj, {}, ready=False, reason="InvalidNamespaceSelector",
                               message=str(exc))  # fmt: skip
            return None
        if resources != ring.resources or selector != ring.namespace_selector:
            ring.resources, ring.namespace_selector = resources, selector
            ring.namespaces = set()
            self._start_assigners(ring)
        shards = self.shards(key)
        after = await self._resync_if_due(ring, shards)
        if ring.error is not None:
            ready, reason, message = False, "AssignmentFailed", ring.error
        elif ring.resync_error is not None:
            ready, reason, message = False, "ResyncFailed", ring.resync_error
        else:
            ready, reason = True, "ReconciliationSucceeded"
            message = "ControllerRing was successfully reconciled"
        await self._status(obj, shards, ready=ready, reason=reason, message=message)
        return after

    async def _resync_if_due(self, ring: _Ring, shards: dict[str, Shard]) -> float:
        """Resync when the ring's shards changed, when it is time, or to retry; the
        seconds until the next look."""
        ready = frozenset(s.name for s in shards.values() if s.state.on_ring)
        holding = frozenset(s.name for s in shards.values() if s.state.holds_objects)
        membership = (ready, holding, ring.selected)
        now = trio.current_time()
        wait = max(self.settling(shards), ring.retry_at - now)
        if wait > 0:
            return wait + 0.01
        if membership != ring.membership or now >= ring.synced_at + self.sync_period:
            # Shards that held objects at the last resync and hold none now (dead, or
            # their Lease gone), and dead shards' Leases: their objects move first.
            dead = {s.name for s in shards.values() if not s.state.holds_objects}
            if ring.membership is not None:
                dead |= ring.membership[1] - holding
            try:
                result = await self.resync(ring, shards, evacuate=dead)
            except errors.TrioControllerError as exc:
                if isinstance(exc, errors.NotFound):
                    ring.resolved_for = None  # a resource went away: look it up again
                ring.resync_error = f"cannot resync the ring's objects: {exc}"
                ring.retry_delay = min(ring.retry_delay * 2, 60.0)
                ring.retry_at = now + ring.retry_delay
                log.error("Ring %s: %s; retrying in %gs", ring.name, ring.resync_error,
                          ring.retry_delay)  # fmt: skip
                return ring.retry_delay
            ring.resync_error, ring.retry_delay = None, 0.5
            ring.membership, ring.synced_at = membership, now
            if result.conflicts:
                ring.membership = None  # not done: look again soon
                return CONFLICT_RETRY
        return max(ring.synced_at + self.sync_period - now, 0.0) + 0.01

    async def _resources(self, ring: _Ring, obj: dict[str, Any]) -> tuple[RingResource, ...]:
        """The ring's resources: resolved by discovery once per spec (the ring's uid and
        generation), and again after a NotFound (`resolved_for` reset)."""
        meta = obj.get("metadata") or {}
        spec_of = (str(meta.get("uid") or ""), int(meta.get("generation") or 0))
        if ring.resolved_for != spec_of or not ring.resources:
            resources = await self._resolve(obj)
            ring.resolved_for = spec_of
            return resources
        return ring.resources

    async def _resolve(self, obj: dict[str, Any]) -> tuple[RingResource, ...]:
        """The ring's resources as `Resource`s (discovery: preferred version, kind)."""
        resources: list[RingResource] = []
        owners: dict[Resource, set[tuple[str, str]]] = {}
        for entry in (obj.get("spec") or {}).get("resources") or ():
            main = await self._resource(entry.get("group") or "", entry.get("resource") or "")
            resources.append(RingResource(main))
            for controlled in entry.get("controlledResources") or ():
                resource = await self._resource(
                    controlled.get("group") or "", controlled.get("resource") or ""
                )
                owners.setdefault(resource, set()).add((main.group, main.kind))
        resources.extend(RingResource(r, frozenset(o)) for r, o in owners.items())
        return tuple(resources)

    async def _resource(self, group: str, plural: str) -> Resource:
        if group:
            try:
                document = await self.client.request_json("GET", f"/apis/{group}")
            except errors.NotFound:
                raise ResourceNotFound(group, f"group {group!r}") from None
            api_version = (document.get("preferredVersion") or {}).get("groupVersion") or ""
        else:
            api_version = "v1"
        return await self.discovery.resource_for_plural(api_version, plural)

    def _start_assigners(self, ring: _Ring) -> None:
        """(Re)start the ring's assigners: a metadata-only controller over the unassigned
        objects of each resource, on an informer factory of the ring's own, so a ring
        whose resources fail (no RBAC for them, a CRD removed) stops no other ring."""
        assert self._nursery is not None
        if ring.scope is not None:
            ring.scope.cancel()
        ring.scope = trio.CancelScope()
        self._nursery.start_soon(self._run_assigners, ring, ring.scope, ring.resources)

    async def _run_assigners(
        self, ring: _Ring, scope: trio.CancelScope, resources: tuple[RingResource, ...]
    ) -> None:
        """Run the assigners; after a failure, say so in the ring's status and log, and
        start them again (1 s doubling to a minute)."""
        delay = 1.0
        with scope:
            while True:
                factory = SharedInformerFactory(self.client)
                ring.controllers = {rr.resource: self._assigner(ring, rr, factory)
                                    for rr in resources}  # fmt: skip
                ring.namespace_watch = self._namespace_watch(ring, factory)
                try:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(factory.run)
                        for controller in ring.controllers.values():
                            nursery.start_soon(controller.run)
                        if ring.namespace_watch is not None:
                            nursery.start_soon(ring.namespace_watch.run)
                        await factory.wait_for_cache_sync()
                        delay = 1.0
                        if ring.error is not None:
                            ring.error = None
                            log.info("Assigning the objects of ring %s again", ring.name)
                            self.ring_controller.queue.add(ring.name)
                except* errors.TrioControllerError as group:
                    exc = first_leaf(group)
                    if isinstance(exc, errors.NotFound):
                        ring.resolved_for = None  # e.g. a CRD removed: look it up again
                    ring.error = f"cannot watch the ring's objects: {exc}"
                    log.error("Ring %s: %s; retrying in %gs", ring.name, ring.error, delay)
                    self.ring_controller.queue.add(ring.name)
                await trio.sleep(delay)
                delay = min(delay * 2, 60.0)

    def _assigner(
        self, ring: _Ring, rr: RingResource, factory: SharedInformerFactory
    ) -> Controller:
        async def assign(key: str) -> float | None:
            return await self.assign(ring, rr, key)

        return Controller(
            self.client,
            rr.resource,
            assign,
            label_selector=f"!{ring.shard_label}",
            metadata_only=True,
            factory=factory,
            name=f"{ring.name} {rr.resource.kind} assigner",
            options=ControllerOptions(workers=4),
        )

    def _namespace_watch(self, ring: _Ring, factory: SharedInformerFactory) -> Controller | None:
        """For a ring with a namespaceSelector: a metadata-only Namespace watch keeping
        `ring.namespaces`; a namespace that starts or stops matching wakes the ring."""
        selector = ring.namespace_selector
        if selector is None:
            return None

        async def namespace_changed(key: str) -> None:
            assert watch is not None and selector is not None
            labels = watch.store.labels(key) if key in watch.store else None
            selected = labels is not None and selector.matches(labels)
            if selected != (key in ring.namespaces):
                (ring.namespaces.add if selected else ring.namespaces.discard)(key)
                log.info("Ring %s: namespace %s is %s", ring.name, key,
                         "selected" if selected else "no longer selected")  # fmt: skip
                self.ring_controller.queue.add(ring.name)

        watch = Controller(
            self.client,
            NAMESPACES,
            namespace_changed,
            metadata_only=True,
            factory=factory,
            name=f"{ring.name} Namespace watch",
            # Lists and relists hand every namespace over: by design.
            options=ControllerOptions(hot_loop_threshold=None),
        )
        return watch

    async def _status(
        self, obj: dict[str, Any], shards: dict[str, Shard], *, ready: bool, reason: str,
        message: str,
    ) -> None:  # fmt: skip
        """Write shards, availableShards and the Ready condition when they changed."""
        meta = obj["metadata"]
        status = obj.get("status") or {}
        generation = meta.get("generation") or 0
        old = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), {})
        condition = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "observedGeneration": generation,
            "reason": reason,
            "message": message,
        }
        wanted = {
            "observedGeneration": generation,
            "shards": len(shards),
            "availableShards": sum(1 for s in shards.values() if s.state.on_ring),
        }
        if all(status.get(k) == v for k, v in wanted.items()) and all(
            old.get(k) == v for k, v in condition.items()
        ):
            return
        same = old.get("status") == condition["status"] and old.get("lastTransitionTime")
        condition["lastTransitionTime"] = (
            old["lastTransitionTime"] if same else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        patch = {"status": {**wanted, "conditions": [condition]}}
        try:
            await Api(self.client, CONTROLLER_RINGS).patch_status(meta["name"], patch)
        except errors.NotFound:
            return

    # -- assignment (watch path) ----------------------------------------------------------

    async def assign(self, ring: _Ring, rr: RingResource, key: str) -> float | None:
        """Label the unassigned object `key` of `rr` with its shard, if a shard is ready
        (once the ring has settled after a shard joined: seconds to wait until then)."""
        controller = ring.controllers.get(rr.resource)
        obj = controller.store.get(key) if controller is not None else None
        if obj is None:
            return None
        shards = self.shards(ring.name)
        wait = self.settling(shards)
        if wait > 0:
            return wait + 0.01
        meta = obj.get("metadata") or {}
        if (meta.get("labels") or {}).get(ring.shard_label):
            return None
        if not ring.selects(rr, meta):
            return None  # assigned by a resync if its namespace comes to match
        hash_key = rr.hash_key(meta)
        if not hash_key:
            return None  # a controlled object without a controller of the ring: not sharded
        shard = self._hash_ring(ring, shards).shard_for(hash_key)
        if not shard:
            return None  # no ready shard: assigned by the resync once one is
        if await ring.mover.assign(rr, meta, shard):
            self.assigned += 1
            log.debug("Assigned %s %s to shard %s", rr.resource.kind, key, shard)
        return None

    def shard_for(self, ring: str, group: str, resource: str, meta: dict[str, Any]) -> str | None:
        """The shard an unassigned object of `ring` (its `group`, plural `resource` and
        `metadata`) belongs on now: the one `assign` would label it with (for a
        controlled object, its controller owner's). None when the ring or the resource is
        not (yet) known here, the ring is settling, no shard is ready, or the object is
        not sharded (outside the ring's namespaceSelector) or has no name yet (the watch
        assigns it then). For the webhook."""
        state = self.rings.get(ring)
        rr = next(
            (r for r in state.resources
             if r.resource.group == group and r.resource.plural == resource),
            None,
        ) if state is not None else None  # fmt: skip
        if state is None or rr is None or (not rr.controlled and not meta.get("name")):
            return None
        if not state.selects(rr, meta):
            return None  # a namespace the ring's namespaceSelector leaves out
        shards = self.shards(ring)
        if self.settling(shards) > 0:
            return None
        hash_key = rr.hash_key(meta)
        return (self._hash_ring(state, shards).shard_for(hash_key) or None) if hash_key else None

    # -- resync ---------------------------------------------------------------------------

    async def resync(
        self, ring: _Ring, shards: dict[str, Shard], *, evacuate: Collection[str] = ()
    ) -> Resynced:
        """Drain or move every object of the ring that is not on its desired shard, the
        objects of the shards in `evacuate` (dead or gone) first."""
        hash_ring = self._hash_ring(ring, shards)
        if not hash_ring:
            log.info("Ring %s has no ready shard: nothing to assign", ring.name)
            return Resynced()

        async def fence(shard: str) -> float | None:
            return await self.keeper.fence(self.namespace, shard, ring.name)

        return await ring.mover.resync(
            ring.resources, hash_ring, shards, evacuate=evacuate, namespaces=ring.selected,
            holds=Holds(fence, self.now),
        )  # fmt: skip
