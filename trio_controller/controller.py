"""A controller: an informer's store and reflector feeding a workqueue drained by workers.

The shape of client-go's workqueue example, in one Trio nursery:

    reflector ──keys──▶ WorkQueue ──▶ workers: reconcile(key) → forget / add_rate_limited

`pod_controller()` builds that example: it prints `Sync/Add/Update for Pod <name>` for a key
whose pod is cached and `Pod <namespace>/<name> does not exist anymore` for one that
is not.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

import trio

from trio_controller._native import Store
from trio_controller.cache.reflector import Reflector
from trio_controller.transport.client import Client
from trio_controller.workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)

Reconcile = Callable[[str], Awaitable[None] | None]

MAX_RETRIES = 5


class Controller:
    """Runs `reconcile(key)` for every key the reflector enqueues, client-go style.

    A failing key is retried with `add_rate_limited` until it has been requeued
    `max_retries` times, then dropped with a log line. An exception in `reconcile`
    never stops the controller.
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
        async with trio.open_nursery() as nursery:
            await nursery.start(self.queue.run)
            feeders = trio.CancelScope()
            nursery.start_soon(self._feed, feeders)
            log.info("Waiting for caches to sync")
            synced = await self._wait_for_sync()
            async with trio.open_nursery() as workers:
                if synced:
                    log.info("Caches are synced")
                    for _ in range(self.workers):
                        workers.start_soon(self._worker)
                task_status.started()
                await self._stop.wait()
                log.info("Stopping %s controller", self.name)
                feeders.cancel()
                await self.queue.shut_down_with_drain()
            nursery.cancel_scope.cancel()

    async def _wait_for_sync(self) -> bool:
        """Wait until the cache is synced (True) or `stop()` was called first (False)."""
        async with trio.open_nursery() as nursery:

            async def stop_waiting() -> None:
                await self._stop.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_waiting)
            await self.reflector.synced.wait()
            nursery.cancel_scope.cancel()
        return self.reflector.synced.is_set()

    async def _feed(self, scope: trio.CancelScope) -> None:
        """The producers: the reflector and, if asked, the periodic resync."""
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.reflector.run)
                if self.resync:
                    nursery.start_soon(self._resync_loop, self.resync)

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
        while True:
            try:
                keys = await self.queue.get_batch(self.batch)
            except ShutDown:
                return
            for key in keys:
                try:
                    self.reconcile(key)
                except Exception as exc:
                    self._handle_err(exc, key)
                else:
                    self.queue.forget(key)
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
        try:
            result = self.reconcile(key)
            if result is not None:
                await result
        except Exception as exc:
            self._handle_err(exc, key)
        else:
            self.queue.forget(key)
        finally:
            if self.flush is not None:
                self.flush()
            self.queue.done(key)

    def _handle_err(self, exc: Exception, key: str) -> None:
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
) -> Controller:
    """client-go's workqueue example: watch pods in `namespace` (None: all namespaces)."""
    path = "/api/v1/pods" if namespace is None else f"/api/v1/namespaces/{namespace}/pods"
    store = Store(strip_managed_fields=strip_managed_fields, compress=compress)
    queue = WorkQueue()
    reflector = Reflector(client, path, store, queue, streaming_list=streaming_list)
    printer = PodSyncPrinter(store, out if out is not None else sys.stdout)
    return Controller(
        reflector, queue, printer, workers=workers, resync=resync, flush=printer.flush
    )
