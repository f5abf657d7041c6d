"""Typed stubs for the Rust extension module (see docs/native-api.md for the why).

Time is always an argument: ``now`` is seconds as a float from ``trio.current_time()``.
Nothing in this module reads a clock, sleeps, blocks or starts a thread.
"""

import builtins
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, ValuesView
from typing import Any, Final, Literal, final

from typing_extensions import disjoint_base

__all__ = [
    "PREDICATE_ANNOTATIONS",
    "PREDICATE_GENERATION",
    "PREDICATE_LABELS",
    "PREDICATE_RESOURCE_VERSION",
    "RECONCILE_CAUSES",
    "WORKQUEUE_BUCKETS",
    "BodyDecoder",
    "BucketRateLimiter",
    "Changes",
    "ChangesIterator",
    "DecodeError",
    "ExponentialFailureRateLimiter",
    "FeedResult",
    "InformerCore",
    "LazyObject",
    "ListAccumulator",
    "MaxOfRateLimiter",
    "OwnerMapping",
    "PageInfo",
    "RateLimiter",
    "ReplaceResult",
    "ResponseHead",
    "ShutDown",
    "Store",
    "StoreReader",
    "TlsConfig",
    "TlsSession",
    "TlsSessionError",
    "WatchDecoder",
    "WatchEvent",
    "WorkQueue",
    "__version__",
    "default_controller_rate_limiter",
    "group_of",
    "parse_response_head",
]

__version__: Final[str]

PREDICATE_GENERATION: Final[int]
"""Predicate bit: an update passes if ``metadata.generation`` changed."""
PREDICATE_LABELS: Final[int]
"""Predicate bit: an update passes if ``metadata.labels`` changed."""
PREDICATE_ANNOTATIONS: Final[int]
"""Predicate bit: an update passes if ``metadata.annotations`` changed."""
PREDICATE_RESOURCE_VERSION: Final[int]
"""Predicate bit: an update passes if ``metadata.resourceVersion`` changed."""

WORKQUEUE_BUCKETS: Final[tuple[float, ...]]
"""The 12 bucket bounds (seconds) of the work queue's duration histograms:
controller-runtime's ``ExponentialBuckets(10e-9, 10, 12)`` as Go computes them
(1e-08 ... 1000.0, with ``9.999999999999999e-06`` and ``9.999999999999999e-05``)."""
RECONCILE_CAUSES: Final[tuple[str, ...]]
"""Why a key is queued, as ``WorkQueue`` records it: added, updated, deleted (the object
itself, a live event), related (an owned or watched object), listed (a list, relist or
snapshot; low priority), resync (low priority), requeue_after, requeue, retry (an error),
manual (a plain ``add``)."""

class DecodeError(ValueError):
    """A malformed watch line, list body, object, response head or body framing.

    ``position`` is the stream byte offset (from the decoder's creation or ``reset``) of
    the start of the bad line, ``line`` its 1-based line number, and ``events`` the
    well-formed events of the same ``feed()`` call, in order (nothing is dropped
    silently). In a chunked stream a line's offset counts payload bytes; for malformed
    framing (a message starting ``chunked encoding:``) ``position`` is the body-stream
    offset of the problem and ``line`` the line being read. For a list body or a single
    object, ``position`` is the byte offset of the error in it and ``line`` is 1; for a
    response head, ``position`` is 0.
    """

    position: int
    line: int
    events: list[WatchEvent] | tuple[()]

class ShutDown(Exception):
    """The work queue is shut down and empty."""

# --- rate limiters ------------------------------------------------------------------

@disjoint_base
class RateLimiter:
    """client-go's rate limiter interface. Subclasses only differ in their constructor.

    A limiter's state is shared by every queue it is given to.
    """

    def when(self, key: str, now: float) -> float:
        """Seconds ``key`` should wait before it is retried; counts one failure."""
    def forget(self, key: str) -> None:
        """Stop tracking ``key``: its failures are reset."""
    def num_requeues(self, key: str) -> int:
        """Failures counted for ``key`` since it was last forgotten."""

@final
class ExponentialFailureRateLimiter(RateLimiter):
    """Per-key ``base * 2**failures`` seconds, capped at ``max_delay``."""

    def __new__(
        cls, base: float = 0.005, max_delay: float = 1000.0
    ) -> ExponentialFailureRateLimiter: ...

@final
class BucketRateLimiter(RateLimiter):
    """One token bucket for all keys (starts full): ``qps`` tokens/s, ``burst`` at most."""

    def __new__(cls, qps: float = 10.0, burst: int = 100) -> BucketRateLimiter: ...

@final
class MaxOfRateLimiter(RateLimiter):
    """The longest delay of ``limiters`` (each is asked every time; state is shared)."""

    def __new__(cls, limiters: list[RateLimiter]) -> MaxOfRateLimiter: ...

def default_controller_rate_limiter() -> MaxOfRateLimiter:
    """max(exponential 5 ms → 1000 s, bucket 10 qps / burst 100), as client-go."""

# --- work queue -----------------------------------------------------------------------

@final
class WorkQueue:
    """client-go's rate-limited work queue: fair, stingy, de-duplicating, with two
    priorities and reconcile causes.

    A key added while queued is queued once; a key added while processing is queued
    again when it is ``done``; a key is never handed out twice before ``done``.

    Keys added for "listed" or "resync" wait at low priority behind the others (FIFO
    within each priority); a queued low key added for any other cause moves up. While
    both priorities have keys, every ``low_every``-th hand-out serves the oldest low key,
    so low keys are never starved. ``priorities=False`` queues every key at normal
    priority (one FIFO).

    Per key the queue records why it was added since it was last handed out (``causes``);
    with ``hot_loop_threshold`` > 0 it reports keys handed out more than that many times
    within ``hot_loop_window`` seconds (``take_hot_loops``).

    ``rate_limiter=None`` uses ``default_controller_rate_limiter()``.
    """

    def __new__(
        cls,
        rate_limiter: RateLimiter | None = None,
        *,
        priorities: bool = True,
        low_every: int = 10,
        hot_loop_threshold: int = 0,
        hot_loop_window: float = 60.0,
    ) -> WorkQueue: ...
    @property
    def rate_limiter(self) -> RateLimiter:
        """The limiter ``add_rate_limited`` asks."""
    def add(self, key: str, now: float, cause: str = "manual") -> None:
        """Mark ``key`` as needing processing, for ``cause`` (a ``RECONCILE_CAUSES`` name;
        "listed" and "resync" queue it at low priority). Ignored after ``shut_down``."""
    def add_many(self, keys: Iterable[str], now: float, cause: str = "manual") -> None:
        """``add`` for each key, in one call."""
    def add_many_from(
        self,
        keys: Iterable[str],
        now: float,
        change: str,
        listed: bool = False,
        via: tuple[str, str] | None = None,
    ) -> None:
        """Add each of ``keys`` for a change an informer saw: ``change`` is "added",
        "updated" or "deleted"; ``listed`` (from a list, relist or snapshot) queues them
        at low priority; ``via`` is the related object (resource name, key) whose change
        mapped to them, None for the object itself."""
    def causes(self, key: str) -> tuple[dict[str, int], list[tuple[str, str]], int] | None:
        """Why ``key`` was handed out, while it is processing: ``(counts, related,
        retries)``: the count of each cause recorded since it was last handed out (only
        causes that occurred), the last few related objects ``(resource, key)`` (oldest
        first) and the latest error-retry number. None when ``key`` is not processing."""
    def cause_totals(self) -> dict[str, int]:
        """The causes of every hand-out so far, summed: a count per ``RECONCILE_CAUSES``
        name."""
    def take_hot_loops(self) -> list[tuple[str, int, dict[str, int]]]:
        """Keys found in a hot loop since the last call: ``(key, reconciles in the window,
        causes summed over it)`` each, every key once until it calms down."""
    def set_hot_loop(self, threshold: int, window: float) -> None:
        """Report keys handed out more than ``threshold`` times within ``window`` seconds
        (``take_hot_loops``); 0 turns it off."""
    def set_priorities(self, priorities: bool, low_every: int = 10) -> None:
        """``priorities=False`` queues every key at normal priority (one FIFO); while both
        priorities have keys, every ``low_every``-th hand-out (>= 2) serves a low key."""
    def len_low(self) -> int:
        """Ready keys at low priority."""
    def get_nowait(self, now: float) -> str | None:
        """The next ready key (now processing), or None if none is ready.

        Raises ``ShutDown`` if the queue is shut down and empty.
        """
    def get_many_nowait(self, max: int, now: float) -> list[str]:
        """Up to ``max`` ready keys. Raises ``ShutDown`` if shut down and empty."""
    def done(self, key: str, now: float) -> None:
        """End processing of ``key``; re-queues it if it was added meanwhile.

        A key that is not processing is ignored.
        """
    def done_many(self, keys: Iterable[str], now: float) -> None:
        """``done`` for each key, in one call."""
    def __len__(self) -> int:
        """Ready keys: queued, not delayed, not processing."""
    def processing(self) -> int:
        """Keys handed out and not done yet."""
    def delayed(self) -> int:
        """Keys waiting for their ``add_after`` deadline."""
    def shut_down(self) -> None:
        """Stop accepting keys and drop delayed ones; getters drain what is queued."""
    def shutting_down(self) -> bool:
        """Whether ``shut_down`` was called."""
    def add_after(self, key: str, delay: float, now: float, cause: str = "requeue_after") -> None:
        """Add ``key`` at ``now + delay`` (at a ``promote``); delay <= 0 adds now.

        If ``key`` is already waiting, the earlier deadline wins.
        """
    def next_ready_at(self) -> float | None:
        """The earliest deadline of a delayed key."""
    def promote(self, now: float) -> int:
        """Move the delayed keys due at ``now`` into the queue; returns how many."""
    def add_rate_limited(self, key: str, now: float, cause: str = "retry") -> None:
        """``add_after(key, rate_limiter.when(key, now), now)``; ``cause`` "retry" (an
        error, recorded with its retry number) or "requeue"."""
    def forget(self, key: str) -> None:
        """Reset ``key``'s failures in the rate limiter."""
    def num_requeues(self, key: str) -> int:
        """``key``'s failures counted by the rate limiter."""
    def metrics(self, now: float) -> dict[str, Any]:
        """client-go's workqueue metrics.

        Keys: depth, adds, retries, queue_latency_sum, queue_latency_count,
        work_duration_sum, work_duration_count, unfinished_work_seconds,
        longest_running_processor_seconds (floats), and queue_latency_buckets,
        work_duration_buckets: lists of 13 ints, the observations per bucket of
        ``WORKQUEUE_BUCKETS`` (the first bound ``>=`` the value) then above the last
        bound (+Inf), not cumulative.
        """

# --- owner mapping --------------------------------------------------------------------

@final
class OwnerMapping:
    """Owned objects map to the key of their controller owner of one kind, as
    controller-runtime's ``EnqueueRequestForOwner(..., OnlyControllerOwner())``.

    An object maps to ``<its namespace>/<name>`` (just ``<name>`` when the owner is not
    ``namespaced`` or the object is cluster-scoped) of its ``metadata.ownerReferences``
    entry with ``controller: true`` whose ``apiVersion`` has the group of
    ``api_version`` (any version) and whose ``kind`` is ``kind``; other owners are
    ignored and an object without such an owner maps to nothing.
    """

    def __new__(cls, api_version: str, kind: str, namespaced: bool = True) -> OwnerMapping: ...
    @property
    def api_version(self) -> str:
        """The primary's apiVersion (only its group is compared)."""
    @property
    def kind(self) -> str:
        """The primary's kind."""
    @property
    def namespaced(self) -> bool:
        """Whether the primary is namespaced (its key carries the owned object's namespace)."""
    def owner_key(self, raw: bytes) -> str | None:
        """The owner key of one object's JSON bytes, or None if it has no such owner.

        Only the object's ``metadata`` is read. Raises ``DecodeError`` if it is malformed.
        """

# --- store ----------------------------------------------------------------------------

@final
class ReplaceResult:
    """What ``Store.replace`` (a relist) changed. The key lists are built when read; the
    counts cost nothing."""

    @property
    def added(self) -> list[str]:
        """Keys that were not in the store."""
    @property
    def updated(self) -> list[str]:
        """Keys that were in the store and are in the new list."""
    @property
    def deleted(self) -> list[str]:
        """Keys that vanished (tombstones the controller must still handle)."""
    @property
    def tombstones(self) -> dict[str, bytes]:
        """The last known object bytes of each deleted key."""
    @property
    def counts(self) -> tuple[int, int, int]:
        """How many keys were added, updated and deleted (no list built)."""

@final
class InformerCore:
    """The informer core: applies each read (``feed``) or list (``relist``) to its store and
    fans every change out in the same call: to each queue (the object's key, or with
    ``owner`` its controller owner's key; updates only if they pass the queue's
    predicates), and with ``changes=True`` to a buffer ``take_changes`` hands Python
    once per read for event handlers. Every key goes in through the queue's
    ``add_from`` with where it came from (listed or watched, via which object)."""

    def __new__(cls, store: Store, source: str = "", changes: bool = False) -> InformerCore: ...
    @property
    def store(self) -> Store:
        """The store this core writes."""
    @property
    def source(self) -> str:
        """The watched resource's name as controllers show it (``ConfigMap``)."""
    @property
    def changes(self) -> bool:
        """Whether changes are buffered for ``take_changes``."""
    @changes.setter
    def changes(self, on: bool) -> None: ...
    @property
    def queues(self) -> int:
        """How many queues this core feeds."""
    def add_queue(
        self,
        queue: WorkQueue,
        owner: OwnerMapping | None = None,
        *,
        predicates: int = 0,
        check: Callable[[str, dict[str, Any], dict[str, Any]], bool] | None = None,
    ) -> None:
        """Feed ``queue`` from now on: each changed object's key, or with ``owner`` its
        controller owner's key (old and new owner of an update); with ``predicates``
        (bits of ``PREDICATE_*``) and ``check`` (``(key, old, new) -> bool`` on dicts) an
        update only if every predicate holds and ``check`` returns true. ValueError if
        ``queue`` is already a target or a bit names no predicate.
        """
    def begin(self, head: ResponseHead | None = None) -> None:
        """Start a new watch stream: its body is framed as ``head`` (the response head the
        transport parsed) says: chunked, ``content_length`` bytes, or (no head) lines
        until the connection closes. Drops anything buffered of the previous stream; the
        event counts and the resourceVersion stay."""
    def feed(
        self,
        data: bytes,
        now: float,
        initial: ListAccumulator | None = None,
    ) -> FeedResult:
        """Apply the events the socket read ``data`` completes (``WatchDecoder.feed_into``'s
        rules, on the stream ``begin`` started) and fan each change out to every target
        in the same call. With ``initial`` (a streaming list), events up to the
        initial-events-end bookmark go into it; that bookmark returns at once, leaving
        the rest buffered (``feed(b"", ...)`` continues)."""
    def feed_tls(
        self,
        session: TlsSession,
        data: bytes | bytearray | memoryview,
        now: float,
        initial: ListAccumulator | None = None,
    ) -> FeedResult:
        """``feed`` for a stream that arrives encrypted: ``data`` is one socket read as it
        came (TLS records; ``b""`` when the socket closed), decrypted in ``session`` and
        the plaintext it completed applied, all in this call: the plaintext never
        reaches Python. Raises TlsSessionError when the session fails (a bad record, an
        alert), after nothing of that read was applied; DecodeError as ``feed`` does.
        Continue after an initial-events-end bookmark with ``feed(b"", ...)``."""
    @property
    def body_done(self) -> bool:
        """The current stream's body was read to its end (the last chunk and its trailers,
        or ``content_length`` bytes). Always False for a body read until EOF."""
    @property
    def pending_bytes(self) -> int:
        """Bytes of the current stream buffered and not yet decoded."""
    @property
    def resource_version(self) -> str | None:
        """The watch position: the resourceVersion of the last list, event or bookmark
        applied (None before the first)."""
    def counts(self) -> dict[str, int]:
        """Watch events seen by this core since it was created, by type: ADDED, MODIFIED,
        DELETED, BOOKMARK, ERROR."""
    def relist(
        self, acc: ListAccumulator, resource_version: str | None, now: float
    ) -> ReplaceResult:
        """Replace the store's content with ``acc``'s objects (a relist; empties ``acc``) and
        fan it out as listed changes: adds, updates (against the version each replaced)
        and deletes with each vanished object's last state."""
    def take_changes(self) -> Changes:
        """The changes buffered since the last call, in order (``Changes``: iterate it for
        ``(type, key, old, new, listed)`` tuples)."""

@final
class Changes:
    """One read's changes for Python consumers. Iterating gives, in order,
    ``(type, key, old, new, listed)``: type ``ADDED``/``MODIFIED``/``DELETED``, the objects
    as ``LazyObject`` (parsed when first read; ``old`` None for an add, ``new`` None for a
    delete), ``listed`` for a change from a list. Each iteration makes its tuples as it
    goes (fresh objects each time), so what a consumer does not keep is freed at once."""

    def __len__(self) -> int: ...
    def __iter__(self) -> ChangesIterator: ...

@final
class ChangesIterator:
    """An iteration over ``Changes``."""

    def __iter__(self) -> ChangesIterator: ...
    def __next__(self) -> tuple[str, str, LazyObject | None, LazyObject | None, bool]: ...

@final
class LazyObject:
    """An object's JSON bytes that read as the dict they encode (a mutable mapping),
    parsed (orjson) only as far as they are read: ``obj[key]`` and ``obj.get(key)``
    parse that top-level member alone (``obj["metadata"]`` is a third of a pod); any
    other read (``in``, ``len``, iteration, ``==``, ``keys``, ``items``, ``values``,
    ``copy``, ``pop``, ``setdefault``, ``update``, assignment) parses the whole object
    once, keeping the members read before. A handler that never reads it never pays for
    a parse. ``dict()`` gives the whole dict itself (for ``json.dumps`` and
    ``isinstance(.., dict)``); ``raw`` the bytes. Each change gets objects of its own:
    writing to one changes neither the cache nor another handler's view."""

    def __new__(cls, raw: bytes) -> LazyObject: ...
    def dict(self) -> builtins.dict[str, Any]:
        """The parsed object (parsed now if it was not yet); the same dict on every call."""
    @property
    def raw(self) -> bytes:
        """The object's JSON bytes as the cache holds them."""
    @property
    def parsed(self) -> bool:
        """Whether any of it was parsed (read) already."""
    def __getitem__(self, key: str, /) -> Any: ...
    def __setitem__(self, key: str, value: Any, /) -> None: ...
    def __delitem__(self, key: str, /) -> None: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get`` on the parsed object."""
    def keys(self) -> KeysView[str]:
        """``dict.keys`` of the parsed object."""
    def values(self) -> ValuesView[Any]:
        """``dict.values`` of the parsed object."""
    def items(self) -> ItemsView[str, Any]:
        """``dict.items`` of the parsed object."""
    def copy(self) -> builtins.dict[str, Any]:
        """A shallow copy of the parsed object, as a dict."""
    def pop(self, key: str, *default: Any) -> Any:
        """``dict.pop`` on the parsed object."""
    def setdefault(self, key: str, default: Any = None) -> Any:
        """``dict.setdefault`` on the parsed object."""
    def update(self, *args: Any, **kwargs: Any) -> None:
        """``dict.update`` on the parsed object."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...  # type: ignore[override]
    def __copy__(self) -> builtins.dict[str, Any]: ...
    def __deepcopy__(self, memo: Any, /) -> Any: ...

@final
class Store:
    """Objects as JSON bytes keyed by ``namespace/name`` (or ``name``), with indexes.

    The namespace index is built in under the name ``"namespace"`` (cluster-scoped
    objects are indexed under ``""``).

    With ``strip_managed_fields``, ``metadata.managedFields`` is dropped at insert.

    With ``compress``, objects are kept LZ4-compressed (when that makes them smaller)
    against a shared dictionary (the first objects compressed, up to 16 KiB, then
    frozen; ``replace`` adopts the list's) and decompressed by ``get``, ``get_raw``,
    ``snapshot`` and tombstones; the metadata accessors, indexes and keys never
    decompress.
    """

    def __new__(cls, strip_managed_fields: bool = True, compress: bool = False) -> Store: ...
    @property
    def resource_version(self) -> str | None:
        """The last resourceVersion applied (event, bookmark or list)."""
    @resource_version.setter
    def resource_version(self, value: str | None) -> None: ...
    @property
    def strip_managed_fields(self) -> bool:
        """Whether ``metadata.managedFields`` is dropped at insert."""
    @property
    def compress(self) -> bool:
        """Whether objects are kept compressed."""
    def add_index(self, name: str, path: str) -> None:
        """Index objects by a dotted field path (``"spec.nodeName"``) or a label
        (``"label:app"``); objects already held are indexed at once.

        A string value gives one index value, an array of strings one per item, a number
        or boolean its JSON text; null, objects and missing fields give none.
        """
    def get(self, key: str) -> dict[str, Any] | None:
        """The object as a dict (parsed by orjson on each call), or None."""
    def get_raw(self, key: str) -> bytes | None:
        """The object's JSON bytes, or None."""
    def name(self, key: str) -> str | None:
        """The object's ``metadata.name``, or None if ``key`` is not held."""
    def namespace(self, key: str) -> str | None:
        """The object's ``metadata.namespace``, or None (not held, or cluster-scoped)."""
    def uid(self, key: str) -> str | None:
        """The object's ``metadata.uid``, or None."""
    def object_resource_version(self, key: str) -> str | None:
        """The object's ``metadata.resourceVersion``, or None."""
    def labels(self, key: str) -> dict[str, str] | None:
        """The object's labels, or None if ``key`` is not held."""
    def deleting(self, key: str) -> bool | None:
        """Whether the object has a deletionTimestamp, or None if ``key`` is not held."""
    def list_keys(self) -> list[str]:
        """Every key, in no particular order."""
    def __len__(self) -> int: ...
    def __contains__(self, key: str, /) -> bool: ...
    def by_index(self, name: str, value: str) -> list[str]:
        """Keys whose index ``name`` holds ``value``, sorted. ValueError: no such index."""
    def index_values(self, name: str) -> list[str]:
        """The values index ``name`` holds (no empty sets), sorted."""
    def upsert(self, raw: bytes) -> str:
        """Insert or replace one object (JSON bytes); returns its key.

        Raises ``DecodeError`` for malformed JSON or an object without metadata.name.
        """
    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it was held."""
    def replace(
        self,
        acc: ListAccumulator,
        resource_version: str | None,
        queue: WorkQueue | None = None,
        now: float = 0.0,
        owner: OwnerMapping | None = None,
        *,
        predicates: int = 0,
        check: Callable[[str, dict[str, Any], dict[str, Any]], bool] | None = None,
        source: str = "",
    ) -> ReplaceResult:
        """Replace the whole content with ``acc``'s objects (a relist); empties ``acc``.

        Later objects win over earlier ones with the same key. With ``queue``, the keys
        of the added, updated and deleted objects are added to it at ``now`` (in Rust);
        with ``owner`` too, their controller owners' keys instead.

        ``predicates``, ``check`` and ``source`` as for ``WatchDecoder.feed_into``: an
        object the relist found again is an update, enqueued only if it passes them
        (``ReplaceResult.updated`` still lists it).
        """
    def snapshot(self) -> bytes:
        """Every object and the resource version, for ``restore``."""
    def restore(self, data: bytes) -> int:
        """Replace the content with a ``snapshot()``; returns how many objects it held.

        Raises ``ValueError`` (nothing changes) if ``data`` is not a valid snapshot.
        """
    def reader(self) -> StoreReader:
        """A read-only view of this store (``StoreReader``), for its users."""

@final
class StoreReader:
    """A read-only view of a ``Store``: what ``Informer.store`` and ``Controller.store``
    give. It has every read of the store it views and always shows its current content;
    ``upsert``, ``delete``, ``replace``, ``restore``, ``add_index`` and setting
    ``resource_version`` are not there: the informer that owns the store is its only
    writer."""

    @property
    def resource_version(self) -> str | None:
        """The last resourceVersion applied (event, bookmark or list)."""
    @property
    def strip_managed_fields(self) -> bool:
        """Whether ``metadata.managedFields`` is dropped at insert."""
    @property
    def compress(self) -> bool:
        """Whether objects are kept compressed."""
    def get(self, key: str) -> dict[str, Any] | None:
        """The object as a dict (parsed by orjson on each call), or None."""
    def get_raw(self, key: str) -> bytes | None:
        """The object's JSON bytes, or None."""
    def name(self, key: str) -> str | None:
        """The object's ``metadata.name``, or None if ``key`` is not held."""
    def namespace(self, key: str) -> str | None:
        """The object's ``metadata.namespace``, or None (not held, or cluster-scoped)."""
    def uid(self, key: str) -> str | None:
        """The object's ``metadata.uid``, or None."""
    def object_resource_version(self, key: str) -> str | None:
        """The object's ``metadata.resourceVersion``, or None."""
    def labels(self, key: str) -> dict[str, str] | None:
        """The object's labels, or None if ``key`` is not held."""
    def deleting(self, key: str) -> bool | None:
        """Whether the object has a deletionTimestamp, or None if ``key`` is not held."""
    def list_keys(self) -> list[str]:
        """Every key, in no particular order."""
    def __len__(self) -> int: ...
    def __contains__(self, key: str, /) -> bool: ...
    def by_index(self, name: str, value: str) -> list[str]:
        """Keys whose index ``name`` holds ``value``, sorted. ValueError: no such index."""
    def index_values(self, name: str) -> list[str]:
        """The values index ``name`` holds (no empty sets), sorted."""
    def snapshot(self) -> bytes:
        """Every object and the resource version (for ``--cache-snapshot``)."""

# --- decoding -------------------------------------------------------------------------

@final
class PageInfo:
    """One list page's metadata."""

    @property
    def resource_version(self) -> str | None:
        """The list's resourceVersion."""
    @property
    def continue_token(self) -> str | None:
        """None when the list is complete (an empty token)."""
    @property
    def remaining_item_count(self) -> int | None:
        """``metadata.remainingItemCount``, if the server sent it."""
    @property
    def items(self) -> int:
        """How many items this page held."""

@final
class ListAccumulator:
    """Collects list pages (or a streaming list's initial events) in Rust.

    With ``strip_managed_fields``, each object loses ``metadata.managedFields`` as
    it is collected; with ``compress`` it is compressed as it is collected. Pass the
    destination ``Store``'s settings, so a big list never holds the full objects and
    ``Store.replace`` moves the bytes without a copy (it strips and compresses what
    the accumulator did not, at the cost of a copy). A compressing accumulator learns
    its dictionary from the first objects it collects (or starts with the store's
    when ``WatchDecoder.feed_into`` fills it) and keeps it across ``replace``.
    """

    def __new__(
        cls, strip_managed_fields: bool = False, compress: bool = False
    ) -> ListAccumulator: ...
    @property
    def strip_managed_fields(self) -> bool:
        """Whether collected objects lose ``metadata.managedFields``."""
    @property
    def compress(self) -> bool:
        """Whether collected objects are compressed."""
    def feed_page(self, body: bytes) -> PageInfo:
        """Decode one list response body and keep its items.

        Raises ``DecodeError`` (and keeps nothing of this page) if it is malformed.
        A body of 1 MiB or more is decoded with the GIL released, so
        ``await trio.to_thread.run_sync(acc.feed_page, body)`` runs it beside the loop.
        """
    def clear(self) -> None:
        """Drop the collected items (and free their memory)."""
    def __len__(self) -> int: ...

@final
class WatchEvent:
    """One decoded watch event. ``raw`` is the object's bytes (for ERROR, the Status)."""

    @property
    def type(self) -> Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]:
        """The event type."""
    @property
    def key(self) -> str | None:
        """``namespace/name`` or ``name``; None for BOOKMARK and ERROR."""
    @property
    def namespace(self) -> str | None:
        """The object's ``metadata.namespace``."""
    @property
    def name(self) -> str | None:
        """The object's ``metadata.name``."""
    @property
    def uid(self) -> str | None:
        """The object's ``metadata.uid``."""
    @property
    def resource_version(self) -> str | None:
        """The object's ``metadata.resourceVersion``."""
    @property
    def raw(self) -> bytes:
        """The object's JSON bytes (for ERROR, the Status)."""
    @property
    def code(self) -> int | None:
        """ERROR only: the Status code (410 = Gone)."""
    @property
    def reason(self) -> str | None:
        """ERROR only: the Status reason."""
    @property
    def message(self) -> str | None:
        """ERROR only: the Status message."""
    @property
    def initial_events_end(self) -> bool:
        """A BOOKMARK carrying the ``k8s.io/initial-events-end`` annotation."""
    def object(self) -> dict[str, Any]:
        """The object as a dict (parsed by orjson on each call)."""

@final
class FeedResult:
    """What ``WatchDecoder.feed_into`` did."""

    @property
    def applied(self) -> int:
        """ADDED/MODIFIED/DELETED events applied (to the store, or the accumulator)."""
    @property
    def bookmarks(self) -> int:
        """BOOKMARK events seen."""
    @property
    def resource_version(self) -> str | None:
        """The last resourceVersion seen, or None."""
    @property
    def error(self) -> WatchEvent | None:
        """The first ERROR event; decoding stopped there and the rest was dropped."""
    @property
    def initial_events_end(self) -> bool:
        """The ``k8s.io/initial-events-end`` bookmark was seen."""
    @property
    def body_done(self) -> bool:
        """The body's end was read: the last chunk and its trailers, or
        ``content_length`` bytes."""

@final
class WatchDecoder:
    """Decodes a watch response body: de-frames it (chunked or Content-Length, if
    ``reset`` says so), splits it into lines and decodes them; reads may end anywhere."""

    def __new__(cls) -> WatchDecoder: ...
    def feed(self, data: bytes) -> list[WatchEvent]:
        """The events ``data`` completes.

        A malformed line raises ``DecodeError`` once the whole of ``data`` was read; its
        ``events`` holds every well-formed event of it, and the decoder stays usable.
        Malformed framing raises ``DecodeError`` (``chunked encoding: ...``) with the
        events before it; the decoder then needs ``reset``.
        """
    def feed_into(
        self,
        data: bytes,
        store: Store,
        queue: WorkQueue | None,
        now: float,
        initial: ListAccumulator | None = None,
        owner: OwnerMapping | None = None,
        *,
        predicates: int = 0,
        check: Callable[[str, dict[str, Any], dict[str, Any]], bool] | None = None,
        source: str = "",
    ) -> FeedResult:
        """Apply the events ``data`` completes to ``store`` and add their keys to ``queue``.

        BOOKMARK only moves ``store.resource_version``. ERROR stops and is returned; the
        rest is dropped. With ``initial``, ADDED/MODIFIED go into the accumulator and the
        initial-events-end bookmark returns at once, leaving the rest buffered (call
        ``feed_into(b"", ...)`` to continue). A malformed line raises ``DecodeError``
        after applying the events before it; the buffered bytes are dropped. Malformed
        framing raises ``DecodeError`` (``chunked encoding: ...``) after applying the
        events before it; the decoder then needs ``reset``.

        With ``owner``, each object still goes into ``store`` but ``queue`` gets its
        controller owner's key instead of its own (nothing if it has none): for ADDED and
        MODIFIED the owners of the new object and of the stored one it replaces, for
        DELETED the owner of the deleted object.

        With ``predicates`` (bits of ``PREDICATE_*``) and ``check`` (a callable
        ``(key, old, new) -> bool`` on dicts), an update (the key was cached) reaches
        ``queue`` only if every predicate holds and then ``check`` returns true; adds and
        deletes always do. ``source`` names the watched resource for owner-mapped keys.
        """
    def reset(self, *, chunked: bool = False, content_length: int | None = None) -> None:
        """Start a new stream (position 0, line 1), dropping anything buffered.

        Its body is HTTP/1.1 ``chunked``, or exactly ``content_length`` bytes, or (neither)
        lines until the connection closes. ValueError if both are given.
        """
    @property
    def pending_bytes(self) -> int:
        """Bytes buffered and not yet decoded."""
    @property
    def body_done(self) -> bool:
        """The body's end was read (the last chunk and its trailers, or ``content_length``
        bytes); bytes after it are ignored. Always False for a body read until EOF."""
    def counts(self) -> dict[str, int]:
        """Events seen by this decoder since it was created (``reset`` keeps them), by
        type: ADDED, MODIFIED, DELETED, BOOKMARK, ERROR."""

# --- HTTP/1.1 framing for the owned watch transport ------------------------------------

@final
class BodyDecoder:
    """De-frames a small non-watch body (an error Status): chunked, or exactly
    ``content_length`` bytes, or (neither) everything until the connection closes."""

    def __new__(cls, chunked: bool, content_length: int | None) -> BodyDecoder: ...
    def feed(self, data: bytes) -> bytes:
        """The payload ``data`` holds (bytes after the body's end are ignored).

        Malformed framing raises ``DecodeError`` (``chunked encoding: ...``), and again
        on every later call.
        """
    @property
    def done(self) -> bool:
        """The body's end was read. Always False for a body read until EOF."""

@final
class ResponseHead:
    """An HTTP/1.1 response head (also a CONNECT proxy's reply)."""

    @property
    def status(self) -> int:
        """The status code."""
    @property
    def reason(self) -> str:
        """The reason phrase."""
    @property
    def headers(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs in the order received; names lower-cased, values
        decoded as Latin-1."""
    @property
    def length(self) -> int:
        """Bytes of the head, the blank line included: the body starts at ``buf[length:]``."""
    @property
    def chunked(self) -> bool:
        """Transfer-Encoding's last coding is ``chunked``."""
    @property
    def content_length(self) -> int | None:
        """The Content-Length, or None."""
    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""

def group_of(api_version: str) -> str:
    """The API group of ``api_version``: ``example.com/v1`` → ``example.com``; ``v1`` (the
    core group) → ``""``."""

def parse_response_head(buf: bytes) -> ResponseHead | None:
    """The response head at the start of ``buf``, or None while it is incomplete.

    Raises ``DecodeError`` for a malformed head, a head over 64 KiB with no end, an
    invalid or conflicting Content-Length (Content-Length with Transfer-Encoding is a
    conflict), or a Transfer-Encoding other than chunked/identity. A 1xx head is
    returned like any other: the caller skips it and parses the next.
    """

# --- TLS (rustls sessions over buffers; the caller owns the socket) -----------------

class TlsSessionError(Exception):
    """A TLS session failed. ``verification`` is True when the server's certificate was
    refused (the message is OpenSSL's verify message for the same case), False for any
    other handshake or record-layer failure (the message is OpenSSL's reason)."""

    verification: bool

@final
class TlsConfig:
    """TLS client settings for watches (rustls, ring): the PEM CA bundle to trust, a
    PEM client certificate chain and its unencrypted key (PKCS#8, PKCS#1 RSA, SEC1 EC),
    or ``insecure`` (no verification). Sessions offer ALPN ``http/1.1`` only.

    Raises ValueError (one line) for PEM it cannot use."""

    def __new__(
        cls,
        *,
        ca_pem: bytes | None = None,
        cert_pem: bytes | None = None,
        key_pem: bytes | None = None,
        insecure: bool = False,
    ) -> TlsConfig: ...
    def session(self, server_name: str, now: float) -> TlsSession:
        """A new session to ``server_name`` (a DNS name: SNI and the name to verify; an
        IP address: matched against IP SANs, no SNI). ``now`` is wall-clock seconds since
        the Unix epoch (``time.time()``; certificate validity needs the calendar, not
        Trio's clock). Raises TlsSessionError for a name that is neither."""

@final
class TlsSession:
    """One TLS client connection over buffers: send ``take_output()``, feed every
    socket read to ``receive``. Not thread-safe."""

    def receive(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed the bytes of one socket read (``b""`` when the peer closed the socket);
        the plaintext the records in them completed, ``b""`` if none (a record torn
        across reads waits inside). Raises TlsSessionError, then again on every later
        call."""
    def write(self, data: bytes) -> None:
        """Queue plaintext ``data`` to send; ``take_output()`` hands out its records."""
    def take_output(self) -> bytes:
        """The bytes to write to the socket now (handshake, alerts, encrypted data)."""
    @property
    def wants_write(self) -> bool:
        """True when records wait to be sent (``take_output()``): after the handshake, only
        answers to the server's TLS 1.3 key updates."""
    @property
    def handshaking(self) -> bool:
        """True until the handshake completed."""
    @property
    def eof(self) -> bool:
        """True once the stream ended (close_notify, or the peer closed the socket)."""
    @property
    def alpn_protocol(self) -> str | None:
        """The protocol the server chose by ALPN (``"http/1.1"``), or None."""
    @property
    def cipher(self) -> str | None:
        """The negotiated cipher suite (``"TLS13_AES_256_GCM_SHA384"``), None before the
        handshake."""
