"""Read your own writes: a key's next reconcile waits until the caches hold its writes.

Right after a reconcile writes an object, the controller's caches are older than the
write (the watch event is still on its way), and a reconcile started now acts on stale
data (controller-runtime #3320, KEP-5647). `OwnWrites` is the write hook
(`api.verbs.WRITE_HOOK`, set around each reconcile) and remembers the resourceVersion R
each create, replace, patch or apply (status ones too) through `Api` returned:

- for an object of the primary resource whose key K the primary store holds: K's next
  reconcile waits until the store holds K at R or newer (or no longer holds it);
- for an object of an owned or watched resource of the controller, within the scope of
  its informer (held by its store, or created in a namespace it watches without
  selectors): the next reconcile of the key being reconciled waits until that store
  holds the object at R or newer (or, if it held it, no longer does). This is what
  spares an operator a 409 when it creates a child and looks again before the child's
  watch event came back.

resourceVersions compare as integers where both parse (the apiserver's are etcd
revisions), else by equality. The wait is bounded (`timeout`); past it the reconcile
runs anyway with one V(2) line. Writes outside a reconcile are not tracked; a key keeps
at most `KEPT_PER_KEY` writes (the latest).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import trio

from trio_controller._native import Store
from trio_controller.api.resource import Resource
from trio_controller.observe.log import v
from trio_controller.runtime.causes import RECONCILING

__all__ = ["KEPT_PER_KEY", "OWN_WRITES_TIMEOUT", "POLL_INTERVAL", "OwnWrites", "at_least"]

log = logging.getLogger("trio_controller.runtime.controller")

OWN_WRITES_TIMEOUT = 5.0
#: How often a waiting key looks at the store again.
POLL_INTERVAL = 0.005
KEPT_PER_KEY = 16


class Watched(Protocol):
    """What `OwnWrites` reads of an informer: its resource, store and scope."""

    resource: Resource | None
    store: Store
    key: Any  # InformerKey: path, label_selector, field_selector


def at_least(cached: str, written: str) -> bool:
    """Whether resourceVersion `cached` is `written` or newer: as integers where both
    parse, else equal."""
    try:
        return int(cached) >= int(written)
    except ValueError:
        return cached == written


def key_of(obj: dict[str, Any]) -> str | None:
    """The store key of an object: `namespace/name`, or `name` when cluster-scoped."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return None
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return None
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespace else name


def _same(a: Resource, b: Resource) -> bool:
    return a.group == b.group and a.plural == b.plural


def _in_scope(informer: Watched, resource: Resource, obj: dict[str, Any]) -> bool:
    """Whether a new object will reach `informer`'s store: no selectors, and every
    namespace or the object's one."""
    key = informer.key
    if getattr(key, "label_selector", None) or getattr(key, "field_selector", None):
        return False
    namespace = (obj.get("metadata") or {}).get("namespace")
    path = getattr(key, "path", None)
    return path in (resource.path(), resource.path(namespace=namespace))


class OwnWrites:
    """The resourceVersions a controller's reconciles wrote, until its stores catch up.
    `saw_write` is the write hook; `wait(key)` is awaited before the key's next
    reconcile. `informers` (the controller's, a live list) gives the owned and watched
    stores."""

    __slots__ = ("_pending", "informers", "name", "resource", "store", "timeout")

    def __init__(
        self,
        resource: Resource,
        store: Store,
        timeout: float,
        name: str,
        informers: Sequence[Watched] = (),
    ) -> None:
        self.resource = resource
        self.store = store
        self.timeout = timeout
        self.name = name
        self.informers = informers
        # wait key -> (id(store), object key) -> (store, resourceVersion, held at write)
        self._pending: dict[str, dict[tuple[int, str], tuple[Store, str, bool]]] = {}

    def __bool__(self) -> bool:
        """Whether any write is waiting for the cache."""
        return bool(self._pending)

    def saw_write(self, resource: Resource, obj: dict[str, Any]) -> None:
        """`api.verbs.WRITE_HOOK`: remember `obj`'s resourceVersion if a store of ours
        will hold it."""
        key = key_of(obj)
        written = (obj.get("metadata") or {}).get("resourceVersion")
        if key is None or not isinstance(written, str) or not written:
            return
        if _same(resource, self.resource) and self.store.object_resource_version(key):
            self._remember(key, self.store, key, written, True)
        current = RECONCILING.get()
        if current is None:
            return
        for informer in self.informers:
            store = informer.store
            if store is self.store or informer.resource is None:
                continue
            if not _same(resource, informer.resource):
                continue
            held = store.object_resource_version(key) is not None
            if held or _in_scope(informer, informer.resource, obj):
                self._remember(current.key, store, key, written, held)

    def _remember(self, wait: str, store: Store, key: str, written: str, held: bool) -> None:
        entries = self._pending.setdefault(wait, {})
        slot = (id(store), key)
        known = entries.get(slot)
        if known is not None and at_least(known[1], written):
            return
        entries.pop(slot, None)
        entries[slot] = (store, written, held or (known is not None and known[2]))
        if len(entries) > KEPT_PER_KEY:
            del entries[next(iter(entries))]

    def fresh(self, key: str) -> bool:
        """Whether the stores hold every write `key` waits for (an object that was held
        and is gone counts as caught up: deleted since)."""
        entries = self._pending.get(key)
        if entries is None:
            return True
        for slot, (store, written, held) in list(entries.items()):
            cached = store.object_resource_version(slot[1])
            if (cached is None and held) or (cached is not None and at_least(cached, written)):
                del entries[slot]
        if entries:
            return False
        del self._pending[key]
        return True

    async def wait(self, key: str) -> None:
        """Wait until `fresh(key)`, at most `timeout` seconds (then reconcile anyway)."""
        if self.fresh(key):
            return
        with trio.move_on_after(self.timeout):
            # The stores signal no change per key: look again every POLL_INTERVAL.
            while not self.fresh(key):  # noqa: ASYNC110
                await trio.sleep(POLL_INTERVAL)
            return
        entries = self._pending.pop(key, {})
        behind = ", ".join(f"{k} at resourceVersion {rv}" for (_, k), (_, rv, _) in entries.items())
        log.log(
            v(2),
            "The cache of %s does not hold %s after %gs; reconciling %s anyway",
            self.name.lower(),
            behind,
            self.timeout,
            key,
        )
