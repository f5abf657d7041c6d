"""A controller: informers feeding one workqueue drained by workers that reconcile keys.

    informer(primary) ──key──────────────────────▶ WorkQueue ──▶ workers: reconcile(key)
    informer(owned)   ──ownerReferences → owner key──▲            │ None: forget
    informer(watched) ──mapper(object) → keys────────┘            │ seconds / Requeue(after=)
                                                                  │ raise: rate-limited retry

    factory = SharedInformerFactory(client)
    widgets = factory.informer(WIDGETS, namespace=None)
    def reconcile(key: str) -> float | None:
        widget = widgets.store.get(key)      # a dict, parsed now; None once deleted
        ...                                  # raise to retry; return 30.0 to look again
    controller = Controller(client, WIDGETS, reconcile, factory=factory)
    controller.owns(CONFIGMAPS).watches(SECRETS, lambda secret: [...])
    await controller.run()                   # controller.stop() drains and returns

Informers come from a `SharedInformerFactory`: controllers asking for the same resource,
namespace and selectors share one watch and one store, each with its own queue.
`Controller.run` runs the factory unless something else already does.

Timings and counts an operator needs (observe/metrics.py reads them at scrape time):
`stats` (reconciles per result and their durations, one `perf_counter` per key),
`reflector_running` and `reflector_error` (the health probe's liveness check). The
first sync must finish within `ControllerOptions.cache_sync_timeout` seconds (controller-runtime's
CacheSyncTimeout, 2 minutes) or `run` raises `CacheSyncTimeout`; while it runs,
`Still syncing: N objects so far` is logged every `SYNC_PROGRESS_EVERY` seconds.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from trio_controller._native import OwnerMapping, Store, StoreReader
from trio_controller.api.resource import Resource
from trio_controller.api.verbs import WRITE_HOOK
from trio_controller.cache.factory import SharedInformerFactory
from trio_controller.cache.informer import Informer
from trio_controller.cache.options import InformerOptions
from trio_controller.cache.sink import Mapper, UpdatePredicate
from trio_controller.errors import TrioControllerError
from trio_controller.observe.log import v
from trio_controller.observe.stats import ReconcileStats
from trio_controller.runtime.causes import (
    RECONCILING,
    ReconcileCauses,
    Reconciling,
    causes_of,
    describe_causes,
)
from trio_controller.runtime.freshness import OWN_WRITES_TIMEOUT, OwnWrites
from trio_controller.runtime.timeout import ReconcileTimeout
from trio_controller.runtime.workqueue import ShutDown, WorkQueue
from trio_controller.transport.client import Client

__all__ = [
    "CACHE_SYNC_TIMEOUT",
    "CacheSyncTimeout",
    "Controller",
    "ControllerOptions",
    "Reconcile",
    "Requeue",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Requeue:
    """What a reconcile may return: look at the key again `after` seconds (forgetting
    its failures), or with `after=None` when the rate limiter allows (controller-runtime's
    `Result{Requeue: true}`). Returning a number of seconds is `Requeue(after=seconds)`."""

    after: float | None = None


ReconcileResult = None | float | Requeue
Reconcile = Callable[[str], ReconcileResult | Awaitable[ReconcileResult]]

MAX_RETRIES = 5
HOT_LOOP_THRESHOLD = 10  # reconciles of one key within HOT_LOOP_WINDOW: one warning
HOT_LOOP_WINDOW = 60.0
V4 = v(4)
CACHE_SYNC_TIMEOUT = 120.0  # controller-runtime's default CacheSyncTimeout
SYNC_PROGRESS_EVERY = 5.0


@dataclass(frozen=True)
class ControllerOptions:
    """How a controller's workers run, as one frozen value (controller-runtime's
    `controller.Options`); what it watches is `Controller`'s own arguments.

        Controller(client, WIDGETS, reconcile, options=ControllerOptions(workers=4))
        manager.controller(WIDGETS, options=ControllerOptions(threaded=True))

    `workers`: reconciles running at once (never two of one key). `threaded`: a plain
    function runs in a worker thread, a batch of up to `batch` keys per hop (see
    `Controller`). `resync` (seconds, None: never): requeue every cached key that often.
    `max_retries`: rate-limited retries of a failing key before it is dropped with one
    ERROR line. `flush`: called after each batch of keys (and each key of an async
    reconcile), so a reconcile that writes output writes it once per batch.
    `cache_sync_timeout` (seconds, None: wait forever): the first sync's bound, then
    `CacheSyncTimeout`. `reconcile_timeout` (seconds, None: off): an async reconcile
    running longer is cancelled and retried. `hot_loop_threshold` (None: off):
    reconciles of one key within a minute that earn one WARNING. `own_writes_timeout`
    (seconds, None: off): how long a reconcile waits for the cache to hold the
    controller's own writes. `priorities`: keys from lists and resyncs wait behind live
    events (False: one FIFO)."""

    workers: int = 1
    threaded: bool = False
    batch: int = 64
    resync: float | None = None
    max_retries: int = MAX_RETRIES
    flush: Callable[[], None] | None = None
    cache_sync_timeout: float | None = CACHE_SYNC_TIMEOUT
    reconcile_timeout: float | None = None
    hot_loop_threshold: int | None = HOT_LOOP_THRESHOLD
    own_writes_timeout: float | None = OWN_WRITES_TIMEOUT
    priorities: bool = True

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"batch must be 1 or more, not {self.batch}")
        if self.reconcile_timeout is not None and not self.reconcile_timeout > 0:
            raise ValueError("reconcile_timeout must be a positive number of seconds or None")
        if self.own_writes_timeout is not None and not self.own_writes_timeout >= 0:
            raise ValueError("own_writes_timeout must be >= 0 seconds or None")

    def replace(self, **changes: Any) -> ControllerOptions:
        """A copy with `changes` (None is a value here: `reconcile_timeout=None` is off)."""
        return dataclasses.replace(self, **changes)


def _same_resource(a: Resource, b: Resource) -> bool:
    """The same resource, whatever the version asked for."""
    return a.group == b.group and a.plural == b.plural


class CacheSyncTimeout(TrioControllerError):
    """The first sync of the cache did not finish within `cache_sync_timeout`."""


class Source(Protocol):
    """What a controller needs of the reflector behind its primary store."""

    store: Store
    synced: trio.Event

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...


class Controller:
    """Runs `reconcile(key)` for every key its informers enqueue, client-go style.

    `Controller(client, resource, reconcile, namespace=None, label_selector=...)` watches
    `resource` (every namespace when `namespace` is None) through `factory`'s shared
    informer (a factory of its own when none is given, with `informer_options` as its
    defaults); `owns()` and `watches()` add secondary resources. `options`
    (`ControllerOptions`) says how its workers run. `Controller.over(reflector, queue,
    reconcile)` runs over a reflector (or any `Source`) built by hand instead.
    `controller.store` is the primary's cache (a read-only `StoreReader`: `get(key)`
    gives a dict or None); an owned or watched kind's is `controller.store_of(KIND)`.

    `reconcile` may be a coroutine function or a plain function. It returns None (done),
    seconds or `Requeue(after=...)` (look again later), or raises to be retried with the
    rate limiter (5 ms doubling, 10 qps); after `options.max_retries` requeues the key is
    dropped with one ERROR line carrying the exception and its traceback. An exception
    in `reconcile` never stops the controller.

    A plain function runs on the Trio thread by default (`options.threaded` False), taking
    keys in batches of up to `options.batch`. Measured with bench/reconcile_thread.py (a
    no-op reconcile over 20,000 queued keys, this 2-core machine under load): ~2-8 µs of
    runtime cost per key inline, ~12-18 µs with `threaded=True` (each batch goes to a
    worker thread in one `trio.to_thread.run_sync` hop and back), ~700 µs when the hop is
    made per key (`batch=1`: the GIL hand-off between the two threads dominates). Inline
    is the fastest, and a reconcile that only reads the store and writes output never
    blocks; one that blocks (a `requests` call, a file lock, `time.sleep`) stalls every
    watch while it runs, so give it `ControllerOptions(threaded=True)` (or make it
    async). A threaded reconcile must not call Trio or the workqueue: it runs in a worker
    thread and returns its result for the controller to act on.

    `controller.store` is the primary resource's cache, with the controller's namespace
    and selectors (read-only for users: `get(key)` gives a dict parsed then, or None;
    `list_keys()`); `controller.store_of(KIND)` is the cache of an owned or watched kind,
    the very informer `owns()` and `watches()` use. Keys are `namespace/name`, or `name`
    for a cluster-scoped kind. Without `reconcile`, give it later with the
    `@controller.reconciler` decorator, so the reconcile is defined after the controller
    and reads its stores directly.

    `options.cache_sync_timeout` (seconds, None: wait forever) bounds the first sync of
    every informer of the controller. `name` (default: the resource's kind) names the
    controller in logs and metrics: `Starting Widget controller`, `Error syncing widget
    ns/name`. `predicates` (runtime/predicates.py: `generation_changed`, ... or any
    `(old, new) -> bool`) filter the primary's updates: all must hold; adds and deletes
    always enqueue.

    The worker side (runtime/causes.py, freshness.py, timeout.py):
    - Causes: `causes(key)` (or `reconcile_causes()` inside a reconcile) says why a key
      is reconciled: the object added/updated/deleted, a related (owned/watched) object
      changed (which), requeue_after, requeue, retry N, resync, listed (initial list or
      relist). At `-v 4` each key handed out is logged with its causes; the metric is
      `controller_runtime_reconcile_causes_total{controller,cause}`. A key reconciled
      more than `options.hot_loop_threshold` times within 60 s gets one WARNING naming it and
      its top causes (again only after it calmed down); None turns it off.
    - Priority: keys from the initial list, relists and resyncs wait behind live events
      and requeues; every 10th hand-out serves a waiting low key (never starved).
      `options.priorities` False: one FIFO.
    - Read your own writes: after a write through `Api` inside a reconcile returns
      resourceVersion R for a key of the primary store, that key's next reconcile waits
      until the store holds it at R or newer; a write to an owned or watched object makes
      the next reconcile of the key being reconciled wait until that object's store holds
      it. At most `options.own_writes_timeout` seconds (then it runs anyway, with a V(2) line);
      None turns it off.
    - `options.reconcile_timeout` (seconds, None: off): an async reconcile running longer is
      cancelled and fails with `ReconcileTimeout` (an error: rate-limited retry). A plain
      function cannot be cancelled: it runs to the end, its result is used, and a
      WARNING says it ran over.
    """

    def __init__(
        self,
        client: Client,
        resource: Resource,
        reconcile: Reconcile | None = None,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        metadata_only: bool = False,
        predicates: Sequence[UpdatePredicate] = (),
        factory: SharedInformerFactory | None = None,
        name: str | None = None,
        options: ControllerOptions | None = None,
        informer_options: InformerOptions | None = None,
    ) -> None:
        if not isinstance(client, Client) or not isinstance(resource, Resource):
            raise TypeError(
                "Controller(client, resource, reconcile); over a hand-built source: "
                "Controller.over(source, queue, reconcile)"
            )
        self.namespace = namespace
        self.resource: Resource | None = resource
        if factory is None:
            # A factory of its own: its defaults hold for every informer (owns too).
            factory = SharedInformerFactory(client, informer_options or InformerOptions())
        self.factory: SharedInformerFactory | None = factory
        primary = (informer_options or factory.defaults).replace(
            label_selector=label_selector,
            field_selector=field_selector,
            metadata_only=metadata_only or None,
        )
        self.informer: Informer | None = factory.informer(
            resource, namespace=namespace, options=primary
        )
        queue = WorkQueue()
        self.informer.add_queue(queue, predicates=predicates)
        self._informers = [self.informer]
        self._setup(self.informer.reflector, queue, reconcile, name or resource.kind, options)

    @classmethod
    def over(
        cls,
        source: Source,
        queue: WorkQueue,
        reconcile: Reconcile,
        *,
        name: str = "controller",
        options: ControllerOptions | None = None,
    ) -> Controller:
        """A controller over a hand-built `source` (a reflector, or anything with `store`,
        `synced` and `run`) and `queue`, instead of an informer of its own; no `owns` or
        `watches`. `options` mean what they mean for `Controller(...)`."""
        self = cls.__new__(cls)
        self.namespace = None
        self.resource = None
        self.factory = None
        self.informer = None
        self._informers = []
        self._setup(source, queue, reconcile, name, options)
        return self

    def _setup(
        self,
        source: Any,
        queue: WorkQueue,
        reconcile: Reconcile | None,
        name: str,
        options: ControllerOptions | None,
    ) -> None:
        if options is None:
            options = ControllerOptions()
        elif not isinstance(options, ControllerOptions):
            raise TypeError(
                f"options= takes a ControllerOptions, not {type(options).__name__}"
                + (
                    ": an InformerOptions goes in informer_options="
                    if isinstance(options, InformerOptions)
                    else ""
                )
            )
        self.reflector: Any = source
        self.queue = queue
        #: How the workers run (`ControllerOptions`).
        self.options = options
        #: The primary resource's cache, read-only (only its informer writes it).
        self.store: StoreReader | Store = (
            self.informer.store if self.informer is not None else source.store
        )
        self.reconcile: Reconcile | None = None
        self._async = False
        self._wrap_reconcile: Callable[[Reconcile], Reconcile] | None = None
        if reconcile is not None:
            self._set_reconcile(reconcile)
        self.name = name
        self.stats = ReconcileStats()
        #: The reflector task is running (False before `run`, after `stop`, on standby).
        self.reflector_running = False
        #: What ended the reflector task, if an error did.
        self.reflector_error: BaseException | None = None
        self._failure: TrioControllerError | None = None
        self._stop = trio.Event()
        self._fed = trio.Event()  # the feeders of the current run have exited
        self.queue.native.set_hot_loop(options.hot_loop_threshold or 0, HOT_LOOP_WINDOW)
        if not options.priorities:  # (a queue given by hand keeps its own aging setting)
            self.queue.native.set_priorities(False)
        self._own_writes: OwnWrites | None = None
        if options.own_writes_timeout and self.resource is not None:
            self._own_writes = OwnWrites(
                self.resource, self.store, options.own_writes_timeout, self.name, self._informers
            )

    def _set_reconcile(self, reconcile: Reconcile) -> None:
        self.reconcile = reconcile
        self._async = _is_async(reconcile)

    def reconciler(self, reconcile: Reconcile) -> Reconcile:
        """Give the controller its reconcile, as a decorator, for a controller built
        without one: the reconcile is then defined after the controller, so it reads
        `controller.store` and `controller.store_of(...)` like any other name:

            controller = manager.controller(NAMESPACES, label_selector="team")
            controller.owns(RESOURCE_QUOTAS)
            namespaces, quotas = controller.store, controller.store_of(RESOURCE_QUOTAS)

            @controller.reconciler
            async def reconcile(key: str) -> None: ...

        Returns `reconcile` unchanged. TypeError when the controller has one already."""
        if self.reconcile is not None:
            raise TypeError(f"the {self.name} controller has a reconcile already")
        wrap = self._wrap_reconcile
        self._set_reconcile(wrap(reconcile) if wrap is not None else reconcile)
        return reconcile

    def store_of(self, resource: Resource) -> StoreReader | Store:
        """The cache this controller reads `resource` from, for its reconcile: the
        primary's (`controller.store`, with the controller's namespace and selectors),
        or that of the very informer `owns(resource)` or `watches(resource, ...)` feeds
        its queue from (the same namespace and selectors). A reconcile that reads these
        sees every object its queue is fed about; `manager.factory.informer(...)` with
        another namespace or selector is another watch with another cache.

        ValueError when the controller does not watch `resource` (call `owns()` or
        `watches()` first), or watches it through several informers (then read the one
        meant: `controller.factory.informer(resource, namespace=..., options=...)`)."""
        if self.resource is not None and _same_resource(self.resource, resource):
            return self.store
        found = [
            i for i in self._informers[1:] if i.resource and _same_resource(i.resource, resource)
        ]
        if len(found) == 1:
            return found[0].store
        if not found:
            raise ValueError(
                f"the {self.name} controller does not watch {resource.plural}: call "
                f"owns({resource.kind.upper()}...) or watches(...) before store_of()"
            )
        raise ValueError(
            f"the {self.name} controller watches {resource.plural} through "
            f"{len(found)} informers ({', '.join(i.key.path for i in found)}): read "
            "the one meant with controller.factory.informer(...)"
        )

    @property
    def informers(self) -> list[Informer]:
        """The informers feeding this controller's queue: the primary's first, then
        those of `owns()` and `watches()` in the order they were added."""
        return list(self._informers)

    # -- secondary resources -----------------------------------------------------------

    def owns(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        metadata_only: bool = False,
        predicates: Sequence[UpdatePredicate] = (),
    ) -> Controller:
        """Reconcile the controller owner of every changed `resource` object: the
        ownerReference with `controller: true` whose group and kind are the primary's
        (controller-runtime's `Owns`). `namespace` defaults to the controller's.
        With `predicates`, an update of an owned object counts only if every one holds."""
        primary = self._primary("owns")
        assert self.factory is not None
        informer = self.factory.informer(
            resource,
            namespace=namespace if namespace is not None else self.namespace,
            options=self.factory.defaults.replace(
                label_selector=label_selector, metadata_only=metadata_only or None
            ),
        )
        # Mapped in Rust on the fast path (the owned informer's only consumer), by the
        # same rules in Python when the informer is shared.
        owner = OwnerMapping(primary.api_version, primary.kind, primary.namespaced)
        informer.add_queue(self.queue, owner=owner, predicates=predicates)
        if informer not in self._informers:
            self._informers.append(informer)
        return self

    def watches(
        self,
        resource: Resource,
        mapper: Mapper,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        metadata_only: bool = False,
        predicates: Sequence[UpdatePredicate] = (),
    ) -> Controller:
        """Reconcile the keys `mapper(object)` returns for every changed `resource`
        object (old and new versions, tombstones included). With `predicates`, an
        update of a watched object counts only if every one holds."""
        self._primary("watches")
        assert self.factory is not None
        informer = self.factory.informer(
            resource,
            namespace=namespace if namespace is not None else self.namespace,
            options=self.factory.defaults.replace(
                label_selector=label_selector,
                field_selector=field_selector,
                metadata_only=metadata_only or None,
            ),
        )
        informer.add_queue(self.queue, mapper=mapper, predicates=predicates)
        if informer not in self._informers:
            self._informers.append(informer)
        return self

    def wrap_reconcile(self, wrapper: Callable[[Reconcile], Reconcile]) -> None:
        """Reconcile through `wrapper(reconcile)` (before `run`), now or, for a
        controller still waiting for its reconcile (`reconciler`), when it is given: how a
        Manager makes a shard skip objects it no longer owns and hand drained ones back."""
        if self.reconcile is not None:
            self._set_reconcile(wrapper(self.reconcile))
            return
        inner = self._wrap_reconcile
        self._wrap_reconcile = wrapper if inner is None else (lambda r: wrapper(inner(r)))

    def _primary(self, what: str) -> Resource:
        if self.resource is None:
            raise TypeError(f"{what}() needs Controller(client, resource, reconcile), not .over()")
        return self.resource

    # -- running ---------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """`stop()` was called: the controller is draining (or has stopped)."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask `run` to stop the watch, drain in-flight keys and return."""
        self._stop.set()

    def _synced(self) -> bool:
        if not self._informers:
            return self.reflector.synced.is_set()
        return all(i.has_synced for i in self._informers)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sync the caches, run the workers until `stop()`, then drain and return.

        Raises `CacheSyncTimeout`, or the reflector's error (`ListFailed` for a resource
        that does not exist or a bad selector, `Forbidden`, ...) as itself."""
        if self.reconcile is None:
            raise TrioControllerError(
                f"the {self.name} controller has no reconcile: pass one, or decorate it "
                "with @controller.reconciler"
            )
        log.info("Starting %s controller", self.name)
        timed_out: CacheSyncTimeout | None = None
        self._failure = None
        self._fed = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.queue.run)
            feeders = trio.CancelScope()
            nursery.start_soon(self._feed, feeders, nursery.cancel_scope)
            log.info("Waiting for caches to sync")
            try:
                synced = await self._wait_for_sync()
            except CacheSyncTimeout as exc:
                timed_out = exc  # raised below, outside the nursery: not in a group
            else:
                await self._work(synced, feeders, task_status)
            nursery.cancel_scope.cancel()
        if self._failure is not None:
            raise self._failure
        if timed_out is not None:
            raise timed_out

    async def _work(
        self, synced: bool, feeders: trio.CancelScope, task_status: trio.TaskStatus[None]
    ) -> None:
        """Run the workers (if synced) until `stop()`, then stop feeding and drain."""
        async with trio.open_nursery() as workers:
            if synced:
                n = len(self.store)
                log.info("Caches are synced (%d objects)", n, extra={"objects": n})
                for _ in range(self.options.workers):
                    workers.start_soon(self._worker)
            task_status.started()
            await self._stop.wait()
            log.info("Stopping %s controller", self.name)
            feeders.cancel()
            # A reflector woken with a read as it was cancelled still applies it: its keys
            # must reach the queue before the queue refuses keys (found by the soak).
            await self._fed.wait()
            await self.queue.shut_down_with_drain()

    async def _wait_for_sync(self) -> bool:
        """Wait until the caches are synced (True) or `stop()` was called first (False).

        Raises `CacheSyncTimeout` after `cache_sync_timeout` seconds.
        """
        timeout = self.options.cache_sync_timeout
        with trio.move_on_after(timeout if timeout is not None else math.inf) as deadline:
            async with trio.open_nursery() as nursery:

                async def stop_waiting() -> None:
                    await self._stop.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stop_waiting)
                nursery.start_soon(self._log_sync_progress)
                await self.reflector.synced.wait()
                for informer in self._informers:
                    await informer.wait_for_cache_sync()
                nursery.cancel_scope.cancel()
        if deadline.cancelled_caught and not (self._stop.is_set() or self._synced()):
            raise CacheSyncTimeout(f"timed out waiting for caches to sync after {timeout:g}s")
        return self._synced()

    async def _log_sync_progress(self) -> None:
        # A stand-in reflector (tests) may not count what it lists.
        listed_so_far = getattr(self.reflector, "listed_so_far", None)
        while True:
            await trio.sleep(SYNC_PROGRESS_EVERY)
            n = listed_so_far() if listed_so_far is not None else len(self.store)
            log.info("Still syncing: %d objects so far", n, extra={"objects": n})

    async def _feed(self, scope: trio.CancelScope, outer: trio.CancelScope) -> None:
        """The producers: the informers (unless their factory runs elsewhere) and, if
        asked, the periodic resync."""
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    factory = self.factory
                    if factory is None or not factory.running:
                        nursery.start_soon(self._run_informers, outer)
                    else:
                        self.reflector_running = True
                    if self.options.resync:
                        nursery.start_soon(self._resync_loop, self.options.resync)
        finally:
            self._fed.set()

    async def _run_informers(self, outer: trio.CancelScope) -> None:
        self.reflector_running = True
        self.reflector_error = None
        try:
            if self.factory is not None:
                await self.factory.run()
            else:
                await self.reflector.run()
        except TrioControllerError as exc:
            # Ours (ListFailed, Forbidden, TLSError): raised by `run` as itself.
            self.reflector_error = exc
            self._failure = exc
            outer.cancel()
        except Exception as exc:
            self.reflector_error = exc
            raise
        finally:
            self.reflector_running = False

    async def _resync_loop(self, period: float) -> None:
        await self.reflector.synced.wait()
        while True:
            await trio.sleep(period)
            self.queue.add_many(self.store.list_keys(), cause="resync")

    # -- workers ---------------------------------------------------------------------

    async def _worker(self) -> None:
        if self._async:
            while await self.process_next_item():
                pass
            return
        queue, flush = self.queue, self.options.flush
        while True:
            try:
                keys = await queue.get_batch(self.options.batch)
            except ShutDown:
                return
            self._handed_out(keys)
            if self._own_writes:
                for key in keys:
                    await self._own_writes.wait(key)
            if self.options.threaded:
                outcomes = await trio.to_thread.run_sync(self._reconcile_all, keys)
            else:
                outcomes = self._reconcile_all(keys)
            finish, observe = self._finish, self.stats.observe
            timeout = self.options.reconcile_timeout
            for key, (result, exc, seconds) in zip(keys, outcomes, strict=True):
                observe(seconds)
                if timeout is not None and seconds > timeout:
                    self._ran_over(key, seconds)
                finish(key, result, exc)
            if flush is not None:
                flush()
            queue.done_many(keys)

    def _reconcile_all(
        self, keys: list[str]
    ) -> list[tuple[ReconcileResult, Exception | None, float]]:
        """Reconcile each key of a batch (on the Trio thread, or in a worker thread):
        results, exceptions and durations, for `_finish` on the Trio thread."""
        reconcile, clock = self.reconcile, time.perf_counter
        out: list[tuple[ReconcileResult, Exception | None, float]] = []
        current = Reconciling(self.queue)
        token = RECONCILING.set(current)  # one per batch; `key` moves along
        try:
            started = clock()
            for key in keys:
                current.key = key
                try:
                    out.append((reconcile(key), None, 0.0))  # type: ignore[arg-type]
                except Exception as exc:
                    out.append((None, exc, 0.0))
                # One clock read per key: each key's time runs from the previous one's end.
                ended = clock()
                result, exc, _ = out[-1]
                out[-1] = (result, exc, ended - started)
                started = ended
        finally:
            RECONCILING.reset(token)
        return out

    async def process_next_item(self) -> bool:
        """Handle one key; False once the queue is shut down and empty."""
        try:
            key = await self.queue.get()
        except ShutDown:
            return False
        self._handed_out((key,))
        await self._process(key)
        return True

    async def _process(self, key: str) -> None:
        if self._own_writes:
            await self._own_writes.wait(key)
        started = time.perf_counter()
        result: Any = None
        error: Exception | None = None
        timeout = self.options.reconcile_timeout
        reconciling = RECONCILING.set(Reconciling(self.queue, key))
        hook = WRITE_HOOK.set(self._own_writes.saw_write if self._own_writes is not None else None)
        try:
            result = self.reconcile(key)
            if inspect.isawaitable(result):
                with trio.move_on_after(math.inf if timeout is None else timeout) as scope:
                    result = await result
                if scope.cancelled_caught:
                    result = None
                    error = ReconcileTimeout(
                        f"reconcile of {self.name.lower()} {key} timed out after {timeout:g}s"
                        " and was cancelled"
                    )
            elif timeout is not None and time.perf_counter() - started > timeout:
                self._ran_over(key, time.perf_counter() - started)
        except Exception as exc:
            error = exc
        finally:
            WRITE_HOOK.reset(hook)
            RECONCILING.reset(reconciling)
        self.stats.observe(time.perf_counter() - started)
        try:
            self._finish(key, result, error)
        finally:
            if self.options.flush is not None:
                self.options.flush()
            self.queue.done(key)

    def _finish(self, key: str, result: Any, exc: Exception | None) -> None:
        """Act on one reconcile's outcome (controller-runtime's reconcileHandler)."""
        queue = self.queue
        if exc is None and result is not None:
            after = result.after if isinstance(result, Requeue) else result
            if isinstance(after, bool) or not isinstance(after, int | float | None):
                exc = TypeError(
                    f"reconcile returned {result!r}; expected None, seconds or Requeue(after=...)"
                )
            elif after is None:
                self.stats.requeues += 1
                queue.add_rate_limited(key, cause="requeue")
                return
            else:
                self.stats.requeues_after += 1
                queue.forget(key)
                queue.add_after(key, float(after))
                return
        if exc is not None:
            self._handle_err(exc, key)
        else:
            queue.forget(key)

    def _handle_err(self, exc: Exception, key: str) -> None:
        self.stats.errors += 1
        name = self.name.lower()
        retries = self.queue.num_requeues(key)
        if retries < self.options.max_retries:
            log.info("Error syncing %s %s: %s: %s", name, key, type(exc).__name__, exc)
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        log.error(
            "Dropping %s %r out of the queue after %d retries: %s: %s",
            name,
            key,
            retries,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )

    # -- causes, hot loops, own writes, timeouts ---------------------------------------

    def causes(self, key: str) -> ReconcileCauses | None:
        """Why `key` is being reconciled (while it is; else None): the causes it was
        queued for since its previous reconcile (`ReconcileCauses`). Inside a reconcile
        `trio_controller.runtime.causes.reconcile_causes()` gives the same."""
        return causes_of(self.queue, key)

    def _handed_out(self, keys: list[str] | tuple[str, ...]) -> None:
        """The V(4) line per key and the hot-loop warnings, once per batch."""
        native = self.queue.native
        if log.isEnabledFor(V4):
            name = self.name.lower()
            for key in keys:
                found = native.causes(key)
                causes = describe_causes(*found) if found is not None else "none"
                log.log(V4, "Reconciling %s %s (causes: %s)", name, key, causes)
        if self.options.hot_loop_threshold:
            for key, reconciles, counts in native.take_hot_loops():
                log.warning(
                    "%s %s was reconciled %d times within %gs (a hot loop?); top causes: %s",
                    self.name,
                    key,
                    reconciles,
                    HOT_LOOP_WINDOW,
                    describe_causes(counts, top=3),
                    extra={"key": key, "reconciles": reconciles},
                )

    def _ran_over(self, key: str, seconds: float) -> None:
        log.warning(
            "Reconcile of %s %s took %.3gs, over reconcile_timeout (%gs); a plain function "
            "cannot be cancelled (make it async to be)",
            self.name.lower(),
            key,
            seconds,
            self.options.reconcile_timeout,
        )


def _is_async(reconcile: Reconcile) -> bool:
    """A coroutine function, or an object whose __call__ is one (a reconciler class)."""
    return inspect.iscoroutinefunction(reconcile) or inspect.iscoroutinefunction(
        getattr(reconcile, "__call__", None)  # noqa: B004 (the method, not callable())
    )
