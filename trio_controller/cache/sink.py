"""Where a reflector's events go: the informer core (Rust) and its Python consumers.

    reflector ──a response head──▶ sink.begin(head)                    (the body's framing)
              ──a read's bytes───▶ sink.apply(data, now, initial)      → FeedResult
              ──or still TLS─────▶ sink.apply_tls(session, data, now, initial)
              ──after a list─────▶ sink.replace(acc, resource_version) → ReplaceResult
              ──the position─────▶ sink.resource_version, sink.body_done, sink.counts()

`CoreSink` is the one write path. Its `InformerCore` (Rust) owns the decoder (the
stream's framing and lines), the store and the watch position; it applies each read or
list to the store and, in the same call, enqueues every changed key into each queue
target (its own key, or through an `OwnerMapping` its controller owner's key; updates
only if they pass the target's predicates): no Python per event. Python consumers
(client-go's `EventHandlers`, key mappers) get the read's changes once per read from
the core's changes buffer, as `(type, key, old, new, listed)` tuples whose objects are
`LazyObject`s: parsed (orjson) only if a consumer reads them. Adds, updates with the
old and the new version, deletes with the last state, and after a relist the same: each
object found again an update against the version it replaced, each vanished one a
delete (a tombstone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from trio_controller._native import (
    Changes,
    FeedResult,
    InformerCore,
    LazyObject,
    ListAccumulator,
    OwnerMapping,
    ReplaceResult,
    ResponseHead,
    Store,
    TlsSession,
)
from trio_controller._native import WorkQueue as NativeWorkQueue

__all__ = [
    "Change",
    "Consumer",
    "CoreSink",
    "EventHandlers",
    "Filter",
    "Handlers",
    "LazyObject",
    "Mapper",
    "Queue",
    "QueueMapped",
    "Sink",
    "UpdatePredicate",
]

log = logging.getLogger(__name__)

# A LazyObject reads as the dict it encodes (parsed on the first read).
MutableMapping.register(LazyObject)

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


class Queue(Protocol):
    """What the core feeds: the native queue, and a way to wake its takers after a read
    (the runtime's `WorkQueue`)."""

    @property
    def native(self) -> NativeWorkQueue: ...

    def wake(self) -> None: ...


class Sink(Protocol):
    """What a reflector feeds: a store kept equal to the server's view, and its targets.
    It owns the stream's decoder and the watch position; the reflector hands it the
    response head once per stream, then only socket reads."""

    @property
    def store(self) -> Store: ...

    @property
    def resource_version(self) -> str | None:
        """The watch position: the resourceVersion of the last list, event or bookmark."""
        ...

    @property
    def body_done(self) -> bool:
        """The current stream's body was read to its end (chunked or Content-Length)."""
        ...

    def counts(self) -> dict[str, int]:
        """Watch events seen so far, by type (ADDED ... ERROR)."""
        ...

    def begin(self, head: ResponseHead | None) -> None:
        """A new stream whose body is framed as `head` says (None: lines until EOF)."""
        ...

    def apply(self, data: bytes, now: float, initial: ListAccumulator | None) -> FeedResult:
        """Decode one socket read and apply its events (with `initial`, a streaming
        list's events go into it); stops at an ERROR event and returns it; a malformed
        line raises `DecodeError` after applying the events before it."""
        ...

    def apply_tls(
        self,
        session: TlsSession,
        data: bytes | memoryview,
        now: float,
        initial: ListAccumulator | None,
    ) -> FeedResult:
        """`apply` for a read still encrypted: decrypted in `session` in the same native
        call (`TlsSessionError` when the session fails)."""
        ...

    def replace(self, acc: ListAccumulator, resource_version: str | None) -> ReplaceResult:
        """Swap a list's side buffer in whole; vanished keys come back as tombstones."""
        ...


Change = tuple[str, str, LazyObject | None, LazyObject | None, bool]
"""One change for Python consumers, `(type, key, old, new, listed)`: type ADDED, MODIFIED
or DELETED; `old` the version replaced or deleted (None for an add), `new` the version
stored (None for a delete), each a `LazyObject` parsed when first read; `listed` for a
change from a list (initial list, relist, snapshot) rather than a watch event."""


class Consumer(Protocol):
    """A Python consumer of an informer's changes."""

    def deliver(self, changes: Changes) -> None:
        """One read's changes (never empty): iterate it, once or more, for `Change`
        tuples in order; each iteration makes fresh objects, and what is not kept is
        freed as the iteration moves on."""
        ...


def _dict(obj: LazyObject | None) -> Obj | None:
    return None if obj is None else obj.dict()


class QueueMapped:
    """Enqueue the keys `mapper` derives from each changed object, old and new version
    (an owner that changed, an object that stopped matching: both are told); updates
    only if they pass `filter`."""

    def __init__(
        self,
        queue: Queue,
        mapper: Mapper,
        filter: Filter = Filter(),
    ) -> None:
        self.queue = queue
        self.mapper = mapper
        self.filter = filter

    def deliver(self, changes: Changes) -> None:
        keys: set[str] = set()
        passes, mapper = self.filter.passes, self.mapper
        for kind, key, old_obj, new_obj, _ in changes:
            old, new = _dict(old_obj), _dict(new_obj)
            if kind == "MODIFIED" and not passes(key, old, new):
                continue
            for obj in (old, new):
                if obj is not None:
                    keys.update(mapper(obj))
        if keys:
            self.queue.native.add_many(sorted(keys), trio.current_time())
        self.queue.wake()


@dataclass(frozen=True)
class EventHandlers:
    """client-go's ResourceEventHandlerFuncs.

    `on_add(new)` for an object seen for the first time; `on_update(old, new)` for a
    change of a cached object, and for each object a (re)list finds again (old: the
    version it replaces); `on_delete(old)` with the last known state, also for objects
    a relist no longer found (tombstones). Handlers run on the reflector's task, once
    per change, after the read that carried it was applied: quick, and never blocking.

    Each object is a `LazyObject`: it reads as the dict it encodes (``obj["metadata"]``,
    ``.get``, ``in``, iteration, ``==``, dict methods) and is parsed only when the
    handler first reads it, so a handler that looks at few objects costs little;
    ``obj.dict()`` gives the parsed dict itself (``json.dumps``, ``isinstance(.., dict)``).
    """

    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None


class Handlers:
    """`EventHandlers` as a consumer: each callback gets `LazyObject`s, which read as the
    dicts they encode and are parsed only when the callback reads them."""

    def __init__(self, handlers: EventHandlers) -> None:
        self.handlers = handlers

    def deliver(self, changes: Changes) -> None:
        h = self.handlers
        on_add, on_update, on_delete = h.on_add, h.on_update, h.on_delete
        for kind, _, old, new, _ in changes:
            if kind == "MODIFIED":
                if on_update is not None and new is not None:
                    on_update(new if old is None else old, new)  # type: ignore[arg-type]
            elif kind == "ADDED":
                if on_add is not None and new is not None:
                    on_add(new)  # type: ignore[arg-type]
            elif on_delete is not None and old is not None:
                on_delete(old)  # type: ignore[arg-type]


class CoreSink:
    """The informer core over `store`: queue targets fed in Rust, Python consumers fed
    from its changes buffer once per read. `source` names the resource for the keys it
    enqueues through owners (`ConfigMap`). Targets and consumers may be added between
    reads; they see the changes of later reads."""

    __slots__ = ("_consumers", "_queues", "core")

    def __init__(self, store: Store, source: str = "") -> None:
        self.core = InformerCore(store, source)
        self._queues: list[Queue] = []
        self._consumers: list[Consumer] = []

    @property
    def store(self) -> Store:
        return self.core.store

    def add_queue(
        self,
        queue: Queue,
        owner: OwnerMapping | None = None,
        filter: Filter = Filter(),
    ) -> None:
        """Feed `queue` in Rust: each changed key (with `owner`: its controller owner's
        key); updates only if they pass `filter`."""
        self.core.add_queue(queue.native, owner, predicates=filter.bits, check=filter.check)
        self._queues.append(queue)

    def add_consumer(self, consumer: Consumer) -> None:
        """Hand `consumer` each change, once per read."""
        self._consumers.append(consumer)
        self.core.changes = True

    @property
    def resource_version(self) -> str | None:
        return self.core.resource_version

    @property
    def body_done(self) -> bool:
        return self.core.body_done

    def counts(self) -> dict[str, int]:
        return self.core.counts()

    def begin(self, head: ResponseHead | None) -> None:
        self.core.begin(head)

    def apply(self, data: bytes, now: float, initial: ListAccumulator | None) -> FeedResult:
        try:
            return self.core.feed(data, now, initial)
        finally:  # also after a bad line: the events before it were applied
            self._deliver()

    def apply_tls(
        self,
        session: TlsSession,
        data: bytes | memoryview,
        now: float,
        initial: ListAccumulator | None,
    ) -> FeedResult:
        """`apply` for one socket read still encrypted: the core decrypts it with
        `session` and applies it in the same call (`InformerCore.feed_tls`)."""
        try:
            return self.core.feed_tls(session, data, now, initial)
        finally:
            self._deliver()

    def replace(self, acc: ListAccumulator, resource_version: str | None) -> ReplaceResult:
        try:
            return self.core.relist(acc, resource_version, trio.current_time())
        finally:
            self._deliver()

    def _deliver(self) -> None:
        for queue in self._queues:
            queue.wake()
        if self._consumers:
            changes = self.core.take_changes()
            if changes:
                for consumer in self._consumers:
                    consumer.deliver(changes)
