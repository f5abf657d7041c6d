"""Where a reflector's events go: the one small interface between reflector and cache.

    reflector ──a read's bytes──▶ sink.apply(decoder, data, now, initial) → what it applied
              ──after a list────▶ sink.replace(acc, resource_version)      → ReplaceResult

Two implementations, with the same semantics and the same sync modes:

- `NativeSink(store, queue, owner=None)`: Rust applies each read to the store and
  enqueues the keys (or, with an `OwnerMapping`, the controller owners' keys) in the same
  call (`WatchDecoder.feed_into`; a relist's `Store.replace` too), no Python per event:
  the default.
- `HandlerSink(store, consumers)`: Python per event, for consumers that look at objects
  (`EventHandlers`, key mappers) or for more than one queue. The initial events of a
  streaming list still go to the side buffer in Rust; consumers see them after the
  replace, as after a relist (adds, updates with `old=None`, tombstone deletes).

A consumer is anything with `wants_objects`, `event(kind, key, old, new)` and
`replaced(result, store)`: `QueueKeys` (a key per change), `QueueMapped` (keys a mapper
derives from objects: owners, arbitrary mappers) and `Handlers` (client-go's
ResourceEventHandlerFuncs) are the three kinds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import trio

from trio_controller._native import (
    DecodeError,
    ListAccumulator,
    OwnerMapping,
    ReplaceResult,
    Store,
    WatchDecoder,
    WatchEvent,
)
from trio_controller.runtime.workqueue import WorkQueue

__all__ = [
    "Applied",
    "Consumer",
    "EventHandlers",
    "Fed",
    "Filter",
    "HandlerSink",
    "Handlers",
    "Mapper",
    "NativeSink",
    "QueueKeys",
    "QueueMapped",
    "Sink",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Mapper = Callable[[Obj], Iterable[str]]
"""An object (dict) to the keys of the objects to reconcile (`namespace/name` or `name`)."""

UpdatePredicate = Callable[[Obj | None, Obj | None], bool]
"""`(old, new) -> bool`: whether an update enters a queue. One with an int `bit`
attribute (runtime/predicates.py's built-ins) is evaluated in Rust by that bit."""


@dataclass(frozen=True)
class Filter:
    """The predicates in front of one queue (all must hold): the built-in ones as Rust
    predicate bits, the others as Python callables on `(old, new)` dicts.

    Adds and deletes always pass; an update passes only if every predicate holds."""

    bits: int = 0
    builtins: tuple[UpdatePredicate, ...] = ()
    callables: tuple[UpdatePredicate, ...] = field(default=())

    @classmethod
    def of(cls, predicates: Iterable[UpdatePredicate]) -> Filter:
        bits, builtins, callables = 0, [], []
        for p in predicates:
            bit = getattr(p, "bit", None)
            if isinstance(bit, int) and bit > 0:
                bits |= bit
                builtins.append(p)
            elif callable(p):
                callables.append(p)
            else:
                raise TypeError(f"a predicate is a callable (old, new) -> bool, not {p!r}")
        return cls(bits, tuple(builtins), tuple(callables))

    def __bool__(self) -> bool:
        return bool(self.bits or self.callables)

    @property
    def check(self) -> Callable[[str, Obj, Obj], bool] | None:
        """The Python callables as the core's `check(key, old, new)`, or None."""
        return self._check if self.callables else None

    def _check(self, key: str, old: Obj, new: Obj) -> bool:
        return all(self._call(p, key, old, new) for p in self.callables)

    def passes(self, key: str, old: Obj | None, new: Obj | None) -> bool:
        """Every predicate, evaluated in Python (the Python-handler path)."""
        if old is None or new is None:
            return True
        ps = self.builtins + self.callables
        return all(self._call(p, key, old, new) for p in ps)

    @staticmethod
    def _call(p: UpdatePredicate, key: str, old: Obj, new: Obj) -> bool:
        try:
            return bool(p(old, new))
        except Exception as exc:  # a user predicate's bug must not drop the event
            log.error("Predicate %r failed on %s (the update goes through): %r", p, key, exc)
            return True


class Applied(Protocol):
    """What one `apply` did (the native `FeedResult` or the Python `Fed`)."""

    @property
    def applied(self) -> int: ...
    @property
    def bookmarks(self) -> int: ...
    @property
    def resource_version(self) -> str | None: ...
    @property
    def error(self) -> WatchEvent | None: ...
    @property
    def initial_events_end(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Fed:
    """`Applied` from the Python path, with `FeedResult`'s fields."""

    applied: int
    bookmarks: int
    resource_version: str | None
    error: WatchEvent | None = None
    initial_events_end: bool = False


class Sink(Protocol):
    """What a reflector feeds: a store kept equal to the server's view, and its consumers."""

    @property
    def store(self) -> Store: ...

    def apply(
        self, decoder: WatchDecoder, data: bytes, now: float, initial: ListAccumulator | None
    ) -> Applied:
        """Decode one socket read and apply its events (with `initial`, a streaming
        list's events go into it); stops at an ERROR event and returns it; a malformed
        line raises `DecodeError`."""
        ...

    def replace(self, acc: ListAccumulator, resource_version: str | None) -> ReplaceResult:
        """Swap a list's side buffer in whole; vanished keys come back as tombstones."""
        ...


# -- the fast path ------------------------------------------------------------------------


class NativeSink:
    """The store and one queue, both fed in Rust: one FFI call per read, none per event.

    With `owner` (an owned resource of a controller), the queue gets each changed
    object's controller owner key instead of its own key, mapped in Rust too.
    """

    __slots__ = ("filter", "owner", "queue", "source", "store")

    def __init__(
        self,
        store: Store,
        queue: WorkQueue | None = None,
        owner: OwnerMapping | None = None,
        filter: Filter = Filter(),
        source: str = "",
    ) -> None:
        self.store = store
        self.queue = queue
        self.owner = owner
        self.filter = filter
        self.source = source

    def apply(
        self, decoder: WatchDecoder, data: bytes, now: float, initial: ListAccumulator | None
    ) -> Applied:
        queue = self.queue
        try:
            result = decoder.feed_into(
                data,
                self.store,
                queue.native if queue is not None else None,
                now,
                initial,
                owner=self.owner,
                predicates=self.filter.bits,
                check=self.filter.check,
                source=self.source,
            )
        except DecodeError:
            if queue is not None:
                queue.wake()  # the events before the bad line were enqueued
            raise
        if result.applied and queue is not None:
            queue.wake()
        return result

    def replace(self, acc: ListAccumulator, resource_version: str | None) -> ReplaceResult:
        queue = self.queue
        if queue is None:
            return self.store.replace(acc, resource_version)
        # The keys (or owner keys) are enqueued in the same Rust call.
        result = self.store.replace(
            acc,
            resource_version,
            queue.native,
            trio.current_time(),
            owner=self.owner,
            predicates=self.filter.bits,
            check=self.filter.check,
            source=self.source,
        )
        queue.wake()
        return result


# -- the Python path ------------------------------------------------------------------------


class Consumer(Protocol):
    """One consumer of an informer's changes on the Python path."""

    #: Whether `event` needs the objects as dicts (parsed once per event for everyone).
    wants_objects: bool

    def event(self, kind: str, key: str, old: Obj | None, new: Obj | None) -> None:
        """One change: `kind` is ADDED, MODIFIED or DELETED; `new` is None for a delete,
        `old` None when not known; both None unless some consumer `wants_objects`."""
        ...

    def replaced(self, result: ReplaceResult, store: Store) -> None:
        """A (re)list replaced the store's content."""
        ...


class QueueKeys:
    """Enqueue each changed object's own key (the primary resource of a controller);
    updates only if they pass `filter`."""

    def __init__(self, queue: WorkQueue, filter: Filter = Filter()) -> None:
        self.queue = queue
        self.filter = filter
        self.wants_objects = bool(filter)
        #: Updated keys of the relist being replaced that `filter` refused.
        self.held: set[str] = set()

    def event(self, kind: str, key: str, old: Obj | None, new: Obj | None) -> None:
        if kind == "DELETED" or self.filter.passes(key, old, new):
            self.queue.add(key)

    def replaced(self, result: ReplaceResult, store: Store) -> None:
        held, self.held = self.held, set()
        updated = [k for k in result.updated if k not in held]
        self.queue.add_many(result.added + updated + result.deleted)


class QueueMapped:
    """Enqueue the keys `mapper` derives from each changed object, old and new version
    (an owner that changed, an object that stopped matching: both are told)."""

    wants_objects = True

    def __init__(
        self,
        queue: WorkQueue,
        mapper: Mapper,
        filter: Filter = Filter(),
    ) -> None:
        self.queue = queue
        self.mapper = mapper
        self.filter = filter
        #: Updated keys of the relist being replaced that `filter` refused.
        self.held: set[str] = set()

    def event(self, kind: str, key: str, old: Obj | None, new: Obj | None) -> None:
        if kind != "DELETED" and not self.filter.passes(key, old, new):
            return
        keys: set[str] = set()
        for obj in (old, new):
            if obj is not None:
                keys.update(self.mapper(obj))
        if keys:
            self.queue.add_many(sorted(keys))

    def replaced(self, result: ReplaceResult, store: Store) -> None:
        held, self.held = self.held, set()
        keys: set[str] = set()
        for key in result.added + result.updated:
            if key in held:
                continue
            if (obj := store.get(key)) is not None:
                keys.update(self.mapper(obj))
        for raw in result.tombstones.values():
            keys.update(self.mapper(orjson.loads(raw)))
        if keys:
            self.queue.add_many(sorted(keys))


@dataclass(frozen=True)
class EventHandlers:
    """client-go's ResourceEventHandlerFuncs.

    `on_update` gets `old=None` for objects a (re)list found again: the list replaces
    the cache in one step, so the previous version is not kept. `on_delete` also gets
    tombstones: objects a relist no longer found, with their last known content.
    Handlers run on the reflector's task, one call per event: quick, and never blocking.
    """

    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj | None, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None


class Handlers:
    """`EventHandlers` as a consumer."""

    wants_objects = True

    def __init__(self, handlers: EventHandlers) -> None:
        self.handlers = handlers

    def event(self, kind: str, key: str, old: Obj | None, new: Obj | None) -> None:
        h = self.handlers
        if kind == "DELETED" or new is None:
            if h.on_delete is not None and old is not None:
                h.on_delete(old)
        elif old is None:
            if h.on_add is not None:
                h.on_add(new)
        elif h.on_update is not None:
            h.on_update(old, new)

    def replaced(self, result: ReplaceResult, store: Store) -> None:
        h = self.handlers
        for key in result.added:
            if h.on_add is not None and (obj := store.get(key)) is not None:
                h.on_add(obj)
        for key in result.updated:
            if h.on_update is not None and (obj := store.get(key)) is not None:
                h.on_update(None, obj)
        if h.on_delete is not None:
            for raw in result.tombstones.values():
                h.on_delete(orjson.loads(raw))


class HandlerSink:
    """The store fed one event at a time, each change handed to every consumer.

    A read with a malformed line applies nothing: the store's resourceVersion stays
    before it, so the resumed watch delivers those events again.
    """

    def __init__(self, store: Store, consumers: Sequence[Consumer]) -> None:
        self.store = store
        self.consumers = tuple(consumers)
        self._objects = any(c.wants_objects for c in self.consumers)

    def apply(
        self, decoder: WatchDecoder, data: bytes, now: float, initial: ListAccumulator | None
    ) -> Applied:
        if initial is not None:
            # A streaming list's initial events: into the side buffer, in Rust; the
            # consumers see them at `replace`.
            return decoder.feed_into(data, self.store, None, now, initial)
        events = decoder.feed(data)
        store, consumers, objects = self.store, self.consumers, self._objects
        applied = bookmarks = 0
        resource_version = None
        for ev in events:
            kind = ev.type
            if kind == "ERROR":
                return Fed(applied, bookmarks, resource_version, ev)
            if kind != "BOOKMARK":
                key = ev.key or ""
                old = store.get(key) if objects else None
                new: Obj | None = None
                if kind == "DELETED":
                    store.delete(key)
                    if objects and old is None:
                        old = ev.object()
                else:
                    store.upsert(ev.raw)
                    new = store.get(key) if objects else None
                for consumer in consumers:
                    consumer.event(kind, key, old, new)
                applied += 1
            else:
                bookmarks += 1
            resource_version = ev.resource_version
            store.resource_version = resource_version
        return Fed(applied, bookmarks, resource_version)

    def replace(self, acc: ListAccumulator, resource_version: str | None) -> ReplaceResult:
        filtered = [c for c in self.consumers if getattr(c, "filter", None)]
        check = None
        if filtered:
            # Each update the relist finds is shown to the filtering consumers with
            # both versions before the store changes; the ones refused are held back.
            def check(key: str, old: Obj, new: Obj) -> bool:
                for c in filtered:
                    if not c.filter.passes(key, old, new):  # type: ignore[attr-defined]
                        c.held.add(key)  # type: ignore[attr-defined]
                return True

        result = self.store.replace(acc, resource_version, check=check)
        for consumer in self.consumers:
            consumer.replaced(result, self.store)
        return result
