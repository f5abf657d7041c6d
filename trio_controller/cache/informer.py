"""An informer: a store kept in sync by a reflector, feeding the queues and handlers of
whoever consumes it (several controllers may share one: cache/factory.py).

    informer = Informer(client, PODS, namespace="default", label_selector="app=web")
    informer.add_queue(queue)                       # each changed key (Rust)
    informer.add_queue(other, owner=OwnerMapping(...))  # controller owners' keys (Rust)
    informer.add_queue(third, mapper=keys_of)       # keys derived from objects (Python)
    informer.add_handlers(EventHandlers(on_add=...))
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        await informer.wait_for_cache_sync()

One write path whatever the consumers (cache/sink.py): the informer core applies each
read in Rust and enqueues each changed key into every queue in the same call, no Python
per event; mappers and handlers get the read's changes once per read.
`metadata_only` asks the server for PartialObjectMetadata: the cache holds only each
object's apiVersion, kind and metadata (for resources whose bodies are not needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from trio_controller._native import OwnerMapping, Store, StoreReader
from trio_controller.api.resource import Resource
from trio_controller.cache.options import InformerOptions
from trio_controller.cache.reflector import Reflector
from trio_controller.cache.sink import (
    CoreSink,
    EventHandlers,
    Filter,
    Handlers,
    Mapper,
    Queue,
    QueueMapped,
    UpdatePredicate,
)
from trio_controller.transport.client import Client

__all__ = ["EventHandlers", "Informer", "InformerKey", "InformerOptions"]

Obj = dict[str, Any]


@dataclass(frozen=True)
class InformerKey:
    """What makes two informers the same one (shared by `SharedInformerFactory`)."""

    path: str
    label_selector: str | None = None
    field_selector: str | None = None
    metadata_only: bool = False


class Informer:
    """A `Store` plus the `Reflector` that fills it; `has_synced` after the first list.

    `resource` is a `Resource` (with `namespace`: None for every namespace) or a raw
    collection path; `options` (`InformerOptions`) says how it lists, watches and caches.
    `queue` and `handlers` are shorthands for `add_queue` and `add_handlers`; `params`
    adds query parameters to its requests. Consumers are added before `run` or while it
    runs (the next read uses them); a consumer added after the first sync only sees
    later changes.
    """

    def __init__(
        self,
        client: Client,
        resource: Resource | str,
        options: InformerOptions = InformerOptions(),  # noqa: B008 (frozen: shared safely)
        *,
        namespace: str | None = None,
        queue: Queue | None = None,
        handlers: EventHandlers | None = None,
        params: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(resource, Resource):
            path = resource.path(namespace=namespace)
            kind, source = resource.display, resource.kind
        else:
            path = kind = source = resource
        self.resource = resource if isinstance(resource, Resource) else None
        self.options = options
        #: The watched resource's name as controllers show it (`ConfigMap`).
        self.source = source
        self.key = InformerKey(
            path,
            options.label_selector or None,
            options.field_selector or None,
            options.metadata_only,
        )
        # The writer stays here (the core applies to it); users get a reader.
        self._store = Store(
            strip_managed_fields=options.strip_managed_fields, compress=options.compress
        )
        #: The cache, read-only (`StoreReader`): only this informer writes it.
        self.store: StoreReader = self._store.reader()
        self.indexes: dict[str, str] = {}
        for name, field_path in options.indexes:
            self.add_index(name, field_path)
        all_params = dict(params or {})
        if options.label_selector:
            all_params["labelSelector"] = options.label_selector
        if options.field_selector:
            all_params["fieldSelector"] = options.field_selector
        #: The informer core: the one write path, its queues fed in Rust.
        self.sink = CoreSink(self._store, self.source)
        self.reflector = Reflector(
            client,
            path,
            self.sink,
            params=all_params,
            streaming_list=options.streaming_list,
            metadata_only=options.metadata_only,
            page_size=options.page_size,
            kind=kind,
        )
        self._running = False
        if queue is not None:
            self.add_queue(queue)
        if handlers is not None:
            self.add_handlers(handlers)

    def add_index(self, name: str, field_path: str) -> None:
        """Index the store by `field_path` (see `Store.add_index`); asking again for the
        same index is a no-op, for another path under the same name a ValueError."""
        known = self.indexes.get(name)
        if known == field_path:
            return
        if known is not None:
            raise ValueError(f"index {name!r} is already on {known!r}, not {field_path!r}")
        self._store.add_index(name, field_path)
        self.indexes[name] = field_path

    # -- consumers ---------------------------------------------------------------------

    def add_queue(
        self,
        queue: Queue,
        mapper: Mapper | None = None,
        *,
        owner: OwnerMapping | None = None,
        predicates: Sequence[UpdatePredicate] = (),
    ) -> None:
        """Enqueue into `queue` each changed object's key (in Rust); with `owner`, the key
        of its controller owner (in Rust); with `mapper`, the keys it derives from the
        object, old and new versions (in Python, once per read).

        With `predicates` (runtime/predicates.py), an update enters `queue` only if
        every one holds for (old, new); adds and deletes always do."""
        if mapper is not None and owner is not None:
            raise ValueError("a mapper or an owner mapping, not both")
        filter = Filter.of(predicates)
        if mapper is None:
            self.sink.add_queue(queue, owner, filter)
        else:
            self.sink.add_consumer(QueueMapped(queue, mapper, filter))

    def add_handlers(self, handlers: EventHandlers) -> None:
        """Call `handlers` with each change (on the reflector's task); each object is a
        `LazyObject`, read like a dict and parsed only when the handler reads it."""
        self.sink.add_consumer(Handlers(handlers))

    def restore(self, snapshot: bytes) -> int:
        """Load a `Store.snapshot()` into the cache before `run` (`--cache-snapshot`): the
        first list then reconciles it, reporting what vanished meanwhile as deletes.
        Returns how many objects it held; ValueError (nothing changes) if it is not one."""
        if self._running:
            raise RuntimeError("a snapshot is loaded before the informer runs")
        return self._store.restore(snapshot)

    # -- running -----------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self.reflector.synced.is_set()

    @property
    def running(self) -> bool:
        return self._running

    async def wait_for_cache_sync(self) -> None:
        await self.reflector.synced.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """List and watch until cancelled (`await nursery.start(informer.run)`)."""
        if self._running:
            raise RuntimeError(f"the informer of {self.key.path} is already running")
        self._running = True
        try:
            await self.reflector.run(task_status=task_status)
        finally:
            self._running = False
