"""Read your own writes: a key's next reconcile waits until the cache holds its writes.

Right after a reconcile writes an object, the controller's cache is older than the write
(the watch event is still on its way), and a reconcile started now acts on stale data
(controller-runtime #3320, KEP-5647). `OwnWrites` remembers, per key of the primary
store, the resourceVersion a write through `Api` returned from inside a reconcile (the
write hook `api.verbs.WRITE_HOOK`, set around each reconcile); before the key's next
reconcile the controller waits until the store holds the key at that resourceVersion or
newer, or no longer holds it (deleted). resourceVersions compare as integers where both
parse (the apiserver's are etcd revisions), else by equality. The wait is bounded
(`timeout`); past it the reconcile runs anyway with one V(2) line. Writes outside a
reconcile, to other resources, or to keys the store does not hold are not tracked.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from trio_controller._native import Store
from trio_controller.api.resource import Resource
from trio_controller.observe.log import v

__all__ = ["OWN_WRITES_TIMEOUT", "POLL_INTERVAL", "OwnWrites", "at_least"]

log = logging.getLogger("trio_controller.runtime.controller")

OWN_WRITES_TIMEOUT = 5.0
#: How often a waiting key looks at the store again.
POLL_INTERVAL = 0.005


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


class OwnWrites:
    """The resourceVersions a controller's reconciles wrote, per primary key, until its
    store catches up. `saw_write` is the write hook; `wait(key)` is awaited before the
    key's next reconcile."""

    __slots__ = ("_pending", "name", "resource", "store", "timeout")

    def __init__(self, resource: Resource, store: Store, timeout: float, name: str) -> None:
        self.resource = resource
        self.store = store
        self.timeout = timeout
        self.name = name
        self._pending: dict[str, str] = {}

    def __bool__(self) -> bool:
        """Whether any write is waiting for the cache."""
        return bool(self._pending)

    def saw_write(self, resource: Resource, obj: dict[str, Any]) -> None:
        """`api.verbs.WRITE_HOOK`: remember `obj`'s resourceVersion if it is one of ours."""
        if resource.group != self.resource.group or resource.plural != self.resource.plural:
            return
        key = key_of(obj)
        written = (obj.get("metadata") or {}).get("resourceVersion")
        if key is None or not isinstance(written, str) or not written:
            return
        if self.store.object_resource_version(key) is None:
            return  # not in the cache (a create, or out of its scope): nothing to wait for
        known = self._pending.get(key)
        if known is None or not at_least(known, written):
            self._pending[key] = written

    def fresh(self, key: str) -> bool:
        """Whether the store holds `key`'s last write (or no longer holds `key`)."""
        written = self._pending.get(key)
        if written is None:
            return True
        cached = self.store.object_resource_version(key)
        if cached is None or at_least(cached, written):
            del self._pending[key]
            return True
        return False

    async def wait(self, key: str) -> None:
        """Wait until `fresh(key)`, at most `timeout` seconds (then reconcile anyway)."""
        if self.fresh(key):
            return
        with trio.move_on_after(self.timeout):
            # The store signals no change per key: look again every POLL_INTERVAL.
            while not self.fresh(key):  # noqa: ASYNC110
                await trio.sleep(POLL_INTERVAL)
            return
        written = self._pending.pop(key, None)
        log.log(
            v(2),
            "The cache of %s does not hold %s at resourceVersion %s after %gs; reconciling anyway",
            self.name.lower(),
            key,
            written,
            self.timeout,
        )
