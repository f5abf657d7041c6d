"""The Trio face of the Rust work queue: ``await get()``, delays pumped by ``run``.

The Rust queue (``native``) does the bookkeeping and never waits; this wrapper reads
``trio.current_time()`` for every call that needs time and parks getters until keys
are ready. Delayed keys (``add_after``, ``add_rate_limited``) become ready only while
``run`` is running in a nursery::

    queue = WorkQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        ...
        key = await queue.get()
        try:
            ...
        finally:
            queue.done(key)

Every add names its cause (``RECONCILE_CAUSES``: "manual" unless told): keys added for
"listed" (an initial list, relist or snapshot) or "resync" wait at low priority behind
live events and requeues; while both priorities have keys every ``low_every``-th
hand-out serves the oldest low key (aging: low keys are never starved). While a key is
processing, ``causes(key)`` says why it was added since it was last handed out.
"""

from __future__ import annotations

import math

import trio

from trio_controller._native import RateLimiter, ShutDown
from trio_controller._native import WorkQueue as NativeWorkQueue

__all__ = ["ShutDown", "WorkQueue"]


class WorkQueue:
    """client-go's rate-limited work queue for Trio tasks.

    Fair, stingy (a key is never handed to two workers at once) and de-duplicating (a
    key added while queued is queued once; added while processing, it is processed
    again after ``done``). ``WorkQueue()`` uses client-go's default controller rate
    limiter.
    """

    def __init__(
        self,
        rate_limiter: RateLimiter | None = None,
        *,
        priorities: bool = True,
        low_every: int = 10,
        hot_loop_threshold: int = 0,
        hot_loop_window: float = 60.0,
    ) -> None:
        #: The Rust queue. Call ``wake()`` after adding to it directly.
        self.native = NativeWorkQueue(
            rate_limiter,
            priorities=priorities,
            low_every=low_every,
            hot_loop_threshold=hot_loop_threshold,
            hot_loop_window=hot_loop_window,
        )
        self._getters = trio.lowlevel.ParkingLot()
        self._pump = trio.lowlevel.ParkingLot()
        self._drained = trio.lowlevel.ParkingLot()
        self._pump_until = math.inf
        self._draining = False

    # -- adding ---------------------------------------------------------------------

    def add(self, key: str, *, cause: str = "manual") -> None:
        """Mark ``key`` as needing processing, for ``cause`` ("listed" and "resync" at
        low priority). Ignored after ``shut_down``."""
        self.native.add(key, trio.current_time(), cause)
        self.wake()

    def add_many(self, keys: list[str], *, cause: str = "manual") -> None:
        """``add`` every key in one call."""
        self.native.add_many(keys, trio.current_time(), cause)
        self.wake()

    def add_many_from(
        self,
        keys: list[str],
        change: str,
        *,
        listed: bool = False,
        via: tuple[str, str] | None = None,
    ) -> None:
        """Add keys for a change an informer saw: ``change`` "added", "updated" or
        "deleted"; ``listed`` (a list, relist or snapshot: low priority); ``via`` the
        related object ``(resource name, key)`` that mapped to them."""
        self.native.add_many_from(keys, trio.current_time(), change, listed, via)
        self.wake()

    def add_after(self, key: str, seconds: float, *, cause: str = "requeue_after") -> None:
        """Add ``key`` after ``seconds`` (needs ``run``); an earlier deadline wins."""
        if math.isnan(seconds):
            raise ValueError("seconds must be a number")
        self.native.add_after(key, seconds, trio.current_time(), cause)
        self._after_delay_change()

    def add_rate_limited(self, key: str, *, cause: str = "retry") -> None:
        """Add ``key`` when the rate limiter allows (needs ``run``); ``cause`` "retry"
        (a failure, recorded with its number) or "requeue"."""
        self.native.add_rate_limited(key, trio.current_time(), cause)
        self._after_delay_change()

    def causes(self, key: str) -> tuple[dict[str, int], list[tuple[str, str]], int] | None:
        """Why ``key`` was handed out, while it is processing (``native.causes``)."""
        return self.native.causes(key)

    def forget(self, key: str) -> None:
        """Reset ``key``'s failure count in the rate limiter."""
        self.native.forget(key)

    def num_requeues(self, key: str) -> int:
        """How many times ``key`` was rate limited since it was last forgotten."""
        return self.native.num_requeues(key)

    def wake(self) -> None:
        """Let waiting getters see keys added to ``native`` directly."""
        ready = len(self.native)
        if ready and self._getters:
            self._getters.unpark(count=ready)

    def _after_delay_change(self) -> None:
        self.wake()
        at = self.native.next_ready_at()
        if at is not None and at < self._pump_until:
            self._pump.unpark_all()

    # -- taking ---------------------------------------------------------------------

    async def get(self) -> str:
        """The next key; waits until one is ready. Always checkpoints.

        Raises ``ShutDown`` once the queue is shut down and empty.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                key = self.native.get_nowait(trio.current_time())
            except ShutDown:
                await trio.lowlevel.cancel_shielded_checkpoint()
                raise
            if key is not None:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return key
            await self._getters.park()

    async def get_batch(self, max_keys: int) -> list[str]:
        """Up to ``max_keys`` ready keys (at least one); waits like ``get``.

        Each key is processing until its own ``done``. One scheduler round trip for the
        whole batch: for workers whose handling is synchronous anyway.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        while True:
            try:
                keys = self.native.get_many_nowait(max_keys, trio.current_time())
            except ShutDown:
                if not parked:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                raise
            if keys:
                # Waking from park() was this call's checkpoint; only a batch that was
                # ready at once needs one (a scheduler round per batch saved at low rates).
                if not parked:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return keys
            await self._getters.park()
            parked = True

    def get_nowait(self) -> str:
        """The next key, or ``trio.WouldBlock`` if none is ready.

        Raises ``ShutDown`` once the queue is shut down and empty.
        """
        key = self.native.get_nowait(trio.current_time())
        if key is None:
            raise trio.WouldBlock
        return key

    def done(self, key: str) -> None:
        """End processing of ``key``; it is queued again if it was added meanwhile."""
        self.native.done(key, trio.current_time())
        if len(self.native):
            self.wake()
        if not self.native.processing():
            self._drained.unpark_all()

    def done_many(self, keys: list[str]) -> None:
        """``done`` for every key, in one call."""
        self.native.done_many(keys, trio.current_time())
        if len(self.native):
            self.wake()
        if not self.native.processing():
            self._drained.unpark_all()

    def __len__(self) -> int:
        """Ready keys (not delayed, not processing)."""
        return len(self.native)

    # -- shutting down ----------------------------------------------------------------

    def shut_down(self) -> None:
        """Stop accepting keys; getters drain what is queued, then get ``ShutDown``.

        Delayed keys are dropped. Stops a ``shut_down_with_drain`` from waiting.
        """
        self.native.shut_down()
        self._draining = False
        self._getters.unpark_all()
        self._pump.unpark_all()
        self._drained.unpark_all()

    def shutting_down(self) -> bool:
        """Whether the queue was shut down."""
        return self.native.shutting_down()

    async def shut_down_with_drain(self) -> None:
        """Shut down, then wait until every key handed out is ``done``."""
        self.shut_down()
        self._draining = True
        try:
            while self._draining and self.native.processing():
                await self._drained.park()
        finally:
            self._draining = False
        await trio.lowlevel.checkpoint()

    # -- delays -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Move delayed keys into the queue when they are due, until shut down.

        Start it with ``await nursery.start(queue.run)``.
        """
        task_status.started()
        while not self.native.shutting_down():
            if self.native.promote(trio.current_time()):
                self.wake()
            at = self.native.next_ready_at()
            self._pump_until = math.inf if at is None else at
            with trio.move_on_at(self._pump_until):
                await self._pump.park()
        self._pump_until = math.inf

    def statistics(self) -> dict[str, float]:
        """client-go's workqueue metrics, plus ``waiting_getters``."""
        stats = self.native.metrics(trio.current_time())
        stats["waiting_getters"] = float(len(self._getters))
        return stats
