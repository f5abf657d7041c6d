"""The shard side of controller sharding (timebertt/kubernetes-controller-sharding's
protocol): one replica of a controller among several, each reconciling its own part.

    shard = Shard(client, ShardOptions(controller_ring="widget-operator", shard_name="r1",
                                       shard_lease_namespace="operators"))
    selector = shard.label_selector    # shard.alpha.sharding.timebertt.dev/widget-operator=r1
    mine = factory.defaults.replace(label_selector=selector)
    widgets = factory.informer(WIDGETS, options=mine)        # primary and
    configmaps = factory.informer(CONFIGMAPS, options=mine)  # controlled alike
    reconcile = shard.sharded(reconciler.reconcile, widgets.store, WIDGETS)
    controller = Controller(client, WIDGETS, reconcile, label_selector=selector, ...)
    await shard.run(controller.run)    # holds the shard Lease; cancelled if it is lost

What a shard does (the protocol; the sharder, `trio-controller-sharder`, does the rest):

- It holds a `coordination.k8s.io/v1` Lease of its own, named after the shard, with
  holderIdentity = its name, leaseDurationSeconds 15, labelled
  `alpha.sharding.timebertt.dev/controllerring: <ring>`, renewed as leader election
  renews (every 2 s; lost after 10 s without a renewal) and released on a clean stop
  (holder cleared), so the sharder moves its objects at once. No leader election: every
  shard is active. A shard whose Lease is lost stops reconciling (`run` cancels
  `leading` and raises `LeadershipLost`).
- It watches only the objects labelled `shard.alpha.sharding.timebertt.dev/<ring>:
  <shard>`: that selector goes on the informers of every resource of the ring, the
  primary one and the controlled ones.
- When the sharder adds `drain.alpha.sharding.timebertt.dev/<ring>` to one of its
  objects, the shard removes both labels (a merge patch guarded by the resourceVersion
  it read) and does not reconcile that object again: the sharder then assigns it anew.
  `sharded(reconcile, store, resource)` wraps a reconcile to do exactly that; it also
  skips keys whose object is no longer in this shard's cache (moved away, or deleted).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from trio_controller import errors
from trio_controller.api.resource import Resource
from trio_controller.api.verbs import Api
from trio_controller.runtime.leaderelection import LeaderElector
from trio_controller.transport.client import Client

__all__ = [
    "LABEL_CONTROLLER_RING",
    "LABEL_STATE",
    "SHARD_LEASE_DURATION",
    "Shard",
    "ShardLease",
    "ShardOptions",
    "default_shard_name",
    "drain_label",
    "shard_label",
    "shard_options_from_args",
]

log = logging.getLogger(__name__)

_PREFIX = "alpha.sharding.timebertt.dev/"
LABEL_CONTROLLER_RING = _PREFIX + "controllerring"
"""On a shard Lease: the ControllerRing the shard belongs to."""
LABEL_STATE = _PREFIX + "state"
"""On a shard Lease, kept by the sharder: ready, expired, uncertain, dead, orphaned."""
SHARD_LEASE_DURATION = 15.0
IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_RING_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

Reconcile = Callable[[str], Any]


def shard_label(ring: str) -> str:
    """`shard.alpha.sharding.timebertt.dev/<ring>`: on an object, the shard it is assigned to."""
    return "shard." + _PREFIX + ring


def drain_label(ring: str) -> str:
    """`drain.alpha.sharding.timebertt.dev/<ring>`: the sharder asks the shard to let go."""
    return "drain." + _PREFIX + ring


def check_ring_name(ring: str) -> str:
    """`ring` if it can name a ControllerRing (it is the name part of two label keys: at
    most 63 characters); else a `TrioControllerError` saying why."""
    if not ring or len(ring) > 63 or not _RING_NAME.match(ring):
        raise errors.TrioControllerError(
            f"controller ring {ring!r}: a ControllerRing name is 1-63 lower-case letters, "
            "digits, '-' or '.' (it is part of the shard and drain label keys)"
        )
    return ring


def check_shard_name(name: str) -> str:
    """`name` if it can be a Lease name and a label value; else a `TrioControllerError`."""
    if not name or len(name) > 63 or not _LABEL_VALUE.match(name):
        raise errors.TrioControllerError(
            f"shard name {name!r}: it must be a valid label value (at most 63 letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit)"
        )
    return name


def default_shard_name() -> str:
    """The pod name (`POD_NAME`, from the downward API) if set, else the hostname."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def _in_cluster_namespace() -> str | None:
    try:
        with open(IN_CLUSTER_NAMESPACE) as f:
            return f.read().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class ShardOptions:
    """Which ring this replica is a shard of, its name, and where its Lease lives."""

    controller_ring: str
    shard_name: str
    shard_lease_namespace: str

    def __post_init__(self) -> None:
        check_ring_name(self.controller_ring)
        check_shard_name(self.shard_name)
        if not self.shard_lease_namespace:
            raise errors.TrioControllerError("a shard needs a namespace for its Lease")


def shard_options_from_args(
    args: argparse.Namespace, default_namespace: str | None = None
) -> ShardOptions | None:
    """The `ShardOptions` the flags of `add_shard_flags` ask for; None without
    `--controller-ring` (not sharded). `default_namespace` is the kubeconfig context's."""
    ring = getattr(args, "controller_ring", None)
    if not ring:
        return None
    namespace = (
        getattr(args, "shard_lease_namespace", None)
        or _in_cluster_namespace()
        or default_namespace
        or "default"
    )
    return ShardOptions(
        controller_ring=ring,
        shard_name=getattr(args, "shard_name", None) or default_shard_name(),
        shard_lease_namespace=namespace,
    )


class ShardLease(LeaderElector):
    """The shard's own Lease: leader election's machinery on a Lease named after the
    shard, holderIdentity = that name, labelled with the ring (a merge patch of the
    label each time the Lease is acquired, so a Lease made before, without it, gets it)."""

    def __init__(
        self,
        client: Client,
        options: ShardOptions,
        *,
        lease_duration: float = SHARD_LEASE_DURATION,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        super().__init__(
            client,
            namespace=options.shard_lease_namespace,
            name=options.shard_name,
            identity=options.shard_name,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            release_on_cancel=True,
        )
        self.labels = {LABEL_CONTROLLER_RING: options.controller_ring}
        self._labelled = False

    async def try_acquire_or_renew(self) -> bool:
        """Leader election's attempt; on acquiring, the ring label."""
        held = await super().try_acquire_or_renew()
        if not held:
            self._labelled = False
        elif not self._labelled:
            try:
                await self.client.request_json(
                    "PATCH",
                    self.path,
                    {"metadata": {"labels": self.labels}},
                    content_type="application/merge-patch+json",
                )
                self._labelled = True
            except errors.TrioControllerError as exc:  # tried again at the next renewal
                log.info("could not label shard lease %s/%s: %s", self.namespace, self.name, exc)
        return held


class Shard:
    """One shard of a ControllerRing: its Lease, its label selector, its drain handling."""

    def __init__(
        self,
        client: Client,
        options: ShardOptions,
        *,
        lease_duration: float = SHARD_LEASE_DURATION,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        self.client = client
        self.options = options
        self.ring = options.controller_ring
        self.name = options.shard_name
        self.shard_label = shard_label(self.ring)
        self.drain_label = drain_label(self.ring)
        self.lease = ShardLease(
            client,
            options,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
        )
        #: How many drains this shard acknowledged.
        self.drains = 0

    @classmethod
    def from_args(
        cls, client: Client, args: argparse.Namespace, default_namespace: str | None = None
    ) -> Shard | None:
        """The shard the flags of `add_shard_flags` ask for; None if not sharded."""
        options = shard_options_from_args(args, default_namespace)
        return None if options is None else cls(client, options)

    @property
    def label_selector(self) -> str:
        """`shard.alpha.sharding.timebertt.dev/<ring>=<shard>`, for every informer of the
        ring's resources."""
        return f"{self.shard_label}={self.name}"

    @property
    def holds_lease(self) -> bool:
        return self.lease.is_leader

    async def run(self, leading: Callable[[], Awaitable[None]]) -> None:
        """Hold the shard Lease while `leading()` runs (the controllers); release it when
        `leading` returns or is cancelled. If the Lease cannot be renewed in time,
        `leading` is cancelled and `LeadershipLost` is raised."""
        log.info("Shard %s of ring %s: acquiring its lease", self.name, self.ring)
        await self.lease.run(leading)

    def assigned(self, obj: dict[str, Any] | None) -> bool:
        """`obj` carries this shard's label."""
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        return bool(labels.get(self.shard_label) == self.name)

    def draining(self, obj: dict[str, Any] | None) -> bool:
        """The sharder asked for `obj` back (the drain label is present)."""
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        return self.drain_label in labels

    def predicate(
        self, *predicates: Callable[[dict[str, Any] | None, dict[str, Any] | None], bool]
    ) -> Callable[[dict[str, Any] | None, dict[str, Any] | None], bool]:
        """For the primary resource: pass a drained object always, else an object of this
        shard that passes every one of `predicates` (the original's shardcontroller
        Predicate): a generation-only predicate must not hide the drain label."""

        def sharded(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
            obj = new if new is not None else old
            if self.draining(obj):
                return True
            return self.assigned(obj) and all(p(old, new) for p in predicates)

        return sharded

    def sharded(self, reconcile: Reconcile, store: Any, resource: Resource) -> Reconcile:
        """`reconcile` wrapped for a shard: a key whose object is not in `store` (moved
        away or deleted) or not labelled for this shard is skipped; a drained object gets
        both labels removed and is not reconciled; any other key goes to `reconcile`
        (a plain or a coroutine function)."""

        async def reconcile_sharded(key: str) -> Any:
            obj = store.get(key)
            if obj is None or not self.assigned(obj):
                return None
            if self.draining(obj):
                await self.acknowledge_drain(resource, obj)
                return None
            result = reconcile(key)
            if inspect.isawaitable(result):
                result = await result
            return result

        reconcile_sharded.__name__ = getattr(reconcile, "__name__", "reconcile")
        return reconcile_sharded

    async def acknowledge_drain(self, resource: Resource, obj: dict[str, Any]) -> None:
        """Remove the shard and drain labels from `obj`, guarded by its resourceVersion
        (a newer object raises `Conflict`: the key is retried with the newer one)."""
        meta = obj["metadata"]
        api = Api(self.client, resource, meta.get("namespace") if resource.namespaced else None)
        patch = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "labels": {self.shard_label: None, self.drain_label: None},
            }
        }
        try:
            await api.patch(meta["name"], patch)
        except errors.NotFound:
            return
        self.drains += 1
        where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
        log.info("Shard %s drained %s %s", self.name, resource.kind, where)
