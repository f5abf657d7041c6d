"""A controller: an informer's store and reflector feeding a workqueue drained by workers.

The shape of client-go's workqueue example, in one Trio nursery:

    reflector ──keys──▶ WorkQueue ──▶ workers: reconcile(key) → forget / add_rate_limited

`pod_controller()` builds that example: it prints `Sync/Add/Update for Pod <name>` for a key
whose pod is cached and `Pod <namespace>/<name> does not exist anymore` for one that
is not.

Timings and counts an operator needs (observe/metrics.py reads them at scrape time):
`stats` (reconciles per result and their durations, one `perf_counter` per key),
`reflector_running` and `reflector_error` (the health probe's liveness check). The
first sync must finish within `cache_sync_timeout` seconds (controller-runtime's
CacheSyncTimeout, 2 minutes) or `run` raises `CacheSyncTimeout`; while it runs,
`Still syncing: N objects so far` is logged every `SYNC_PROGRESS_EVERY` seconds.
"""

from __future__ import annotations

import inspect
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TextIO

import trio

from trio_controller._native import Store
from trio_controller.cache.reflector import Reflector
from trio_controller.errors import TrioControllerError
from trio_controller.observe.stats import ReconcileStats
from trio_controller.transport.client import Client
from trio_controller.workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)

Reconcile = Callable[[str], Awaitable[None] | None]

MAX_RETRIES = 5
CACHE_SYNC_TIMEOUT = 120.0  # controller-runtime's default CacheSyncTimeout
SYNC_PROGRESS_EVERY = 5.0


class CacheSyncTimeout(TrioControllerError):
    """The first sync of the cache did not finish within `cache_sync_timeout`."""


class Controller:
    """Runs `reconcile(key)` for every key the reflector enqueues, client-go style.

    A failing key is retried with `add_rate_limited` until it has been requeued
    `max_retries` times, then dropped with a log line. An exception in `reconcile`
    never stops the controller. `cache_sync_timeout` (seconds, None: wait forever)
    bounds the first sync.
    """

    def __init__(
        self,
        reflector: Reflector,
        queue: WorkQueue,
        reconcile: Reconcile,
        *,
        name: str = "Pod",
        workers: int = 1,
        resync: float | None = None,
        max_retries: int = MAX_RETRIES,
        batch: int = 64,
        flush: Callable[[], None] | None = None,
        cache_sync_timeout: float | None = CACHE_SYNC_TIMEOUT,
    ) -> None:
        self.reflector = reflector
        self.store = reflector.store
        self.queue = queue
        self.reconcile = reconcile
        self.name = name
        self.workers = workers
        self.resync = resync
        # Called after each batch of keys (and each key of an async reconcile), so a
        # reconcile that writes output can write it once per batch.
        self.flush = flush
        self.max_retries = max_retries
        self.batch = batch
        # A plain function cannot let other workers run while it works, so its workers
        # take keys in batches: one scheduler round trip per batch instead of per key.
        self._batching = not inspect.iscoroutinefunction(reconcile) and batch > 1
        self.cache_sync_timeout = cache_sync_timeout
        self.stats = ReconcileStats()
        #: The reflector task is running (False before `run`, after `stop`, on standby).
        self.reflector_running = False
        #: What ended the reflector task, if an error did.
        self.reflector_error: BaseException | None = None
        self._stop = trio.Event()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask `run` to stop the watch, drain in-flight keys and return."""
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sync the cache, run the workers until `stop()`, then drain and return."""
        log.info("Starting %s controller", self.name)
        timed_out: CacheSyncTimeout | None = None
        async with trio.open_nursery() as nursery:
            await nursery.start(self.queue.run)
            feeders = trio.CancelScope()
            nursery.start_soon(self._feed, feeders)
            log.info("Waiting for caches to sync")
            try:
                synced = await self._wait_for_sync()
            except CacheSyncTimeout as exc:
                timed_out = exc  # raised below, outside the nursery: not in a group
            else:
                await self._work(synced, feeders, task_status)
            nursery.cancel_scope.cancel()
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
                for _ in range(self.workers):
                    workers.start_soon(self._worker)
            task_status.started()
            await self._stop.wait()
            log.info("Stopping %s controller", self.name)
            feeders.cancel()
            await self.queue.shut_down_with_drain()

    async def _wait_for_sync(self) -> bool:
        """Wait until the cache is synced (True) or `stop()` was called first (False).

        Raises `CacheSyncTimeout` after `cache_sync_timeout` seconds.
        """
        timeout = self.cache_sync_timeout
        with trio.move_on_after(timeout if timeout is not None else math.inf) as deadline:
            async with trio.open_nursery() as nursery:

                async def stop_waiting() -> None:
                    await self._stop.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stop_waiting)
                nursery.start_soon(self._log_sync_progress)
                await self.reflector.synced.wait()
                nursery.cancel_scope.cancel()
        if deadline.cancelled_caught and not (
            self._stop.is_set() or self.reflector.synced.is_set()
        ):
            raise CacheSyncTimeout(f"timed out waiting for caches to sync after {timeout:g}s")
        return self.reflector.synced.is_set()

    async def _log_sync_progress(self) -> None:
        # A stand-in reflector (tests) may not count what it lists.
        listed_so_far = getattr(self.reflector, "listed_so_far", None)
        while True:
            await trio.sleep(SYNC_PROGRESS_EVERY)
            n = listed_so_far() if listed_so_far is not None else len(self.store)
            log.info("Still syncing: %d objects so far", n, extra={"objects": n})

    async def _feed(self, scope: trio.CancelScope) -> None:
        """The producers: the reflector and, if asked, the periodic resync."""
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_reflector)
                if self.resync:
                    nursery.start_soon(self._resync_loop, self.resync)

    async def _run_reflector(self) -> None:
        self.reflector_running = True
        self.reflector_error = None
        try:
            await self.reflector.run()
        except Exception as exc:
            self.reflector_error = exc
            raise
        finally:
            self.reflector_running = False

    async def _resync_loop(self, period: float) -> None:
        await self.reflector.synced.wait()
        while True:
            await trio.sleep(period)
            self.queue.add_many(self.store.list_keys())

    async def _worker(self) -> None:
        if not self._batching:
            while await self.process_next_item():
                pass
            return
        reconcile, observe, clock = self.reconcile, self.stats.observe, time.perf_counter
        while True:
            try:
                keys = await self.queue.get_batch(self.batch)
            except ShutDown:
                return
            started = clock()
            for key in keys:
                try:
                    reconcile(key)
                except Exception as exc:
                    self._handle_err(exc, key)
                else:
                    self.queue.forget(key)
                # One clock read per key: each key's time runs from the previous one's end.
                ended = clock()
                observe(ended - started)
                started = ended
            if self.flush is not None:
                self.flush()
            self.queue.done_many(keys)

    async def process_next_item(self) -> bool:
        """Handle one key; False once the queue is shut down and empty."""
        try:
            key = await self.queue.get()
        except ShutDown:
            return False
        await self._process(key)
        return True

    async def _process(self, key: str) -> None:
        started = time.perf_counter()
        try:
            result = self.reconcile(key)
            if result is not None:
                await result
        except Exception as exc:
            self._handle_err(exc, key)
        else:
            self.queue.forget(key)
        finally:
            self.stats.observe(time.perf_counter() - started)
            if self.flush is not None:
                self.flush()
            self.queue.done(key)

    def _handle_err(self, exc: Exception, key: str) -> None:
        self.stats.errors += 1
        if self.queue.num_requeues(key) < self.max_retries:
            log.info("Error syncing %s %s: %s", self.name.lower(), key, exc)
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        log.info("Dropping %s %r out of the queue: %s", self.name.lower(), key, exc)


class PodSyncPrinter:
    """The example's handler: one line per key, written out once per batch of keys.

    `Controller` calls `flush()` after every batch a worker took (a batch is whatever
    was ready, so no line waits for more input) and after every key of an async
    reconcile: one `write` per batch instead of one per line.
    """

    def __init__(self, store: Store, out: TextIO) -> None:
        self._store = store
        self._out = out
        self._lines: list[str] = []

    def __call__(self, key: str) -> None:
        name = self._store.name(key)
        if name is None:
            self._lines.append(f"Pod {key} does not exist anymore\n")
        else:
            self._lines.append(f"Sync/Add/Update for Pod {name}\n")

    def flush(self) -> None:
        if self._lines:
            text = "".join(self._lines)
            self._lines.clear()
            self._out.write(text)
            self._out.flush()


def pod_controller(
    client: Client,
    *,
    namespace: str | None,
    workers: int = 1,
    resync: float | None = None,
    out: TextIO | None = None,
    strip_managed_fields: bool = True,
    compress: bool = False,
    streaming_list: bool = True,
    cache_sync_timeout: float | None = CACHE_SYNC_TIMEOUT,
) -> Controller:
    """client-go's workqueue example: watch pods in `namespace` (None: all namespaces)."""
    path = "/api/v1/pods" if namespace is None else f"/api/v1/namespaces/{namespace}/pods"
    store = Store(strip_managed_fields=strip_managed_fields, compress=compress)
    queue = WorkQueue()
    reflector = Reflector(client, path, store, queue, streaming_list=streaming_list)
    printer = PodSyncPrinter(store, out if out is not None else sys.stdout)
    return Controller(
        reflector,
        queue,
        printer,
        workers=workers,
        resync=resync,
        flush=printer.flush,
        cache_sync_timeout=cache_sync_timeout,
    )
