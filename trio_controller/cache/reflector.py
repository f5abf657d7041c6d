"""List, then watch, forever: client-go's reflector as a visible state machine.

    StreamList ──(server lacks it)──▶ Relist
    StreamList ──(initial-events-end bookmark: replace the store)──▶ Watch(rv), same stream
    Relist ──(pages into a side buffer, replace the store)──▶ Watch(rv)
    Watch(rv) ──(stream ends normally)──▶ Watch(last rv), at once
    Watch(rv) ──(connection dropped after it delivered events)──▶ Watch(last rv), at once
    any ──(410 Gone: ERROR event or response)──▶ Relist
    any ──(429)──▶ same state after Retry-After
    any ──(other error: refused, stalled, malformed line, 5xx, a watch that ends
           within a second with no event)──▶ same state, a watch from its last rv,
           after backoff (0.8 s → 30 s, jitter, reset after 2 quiet minutes)
    before the first sync, 401/403 ──▶ same state every second for `auth_grace` seconds
           (RBAC of a starting apiserver), then raised; TLS/unreachable ──▶ raised

Each socket read of a watch (every TLS record it brought, decrypted) goes in one call
through the Rust decoder, which undoes the chunked framing, splits lines and applies the
events straight to the Rust store and workqueue (`WatchDecoder.feed_into`): no Python
work per event, unless Python event handlers were given (see informer.py), which take
the per-event path. A relist
collects every page in a Rust `ListAccumulator` and swaps it in whole with
`Store.replace`, so readers never see a half-listed cache and keys that vanished in a
gap come back as tombstones (deleted keys) that are enqueued like any other.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
import trio

from trio_controller import errors
from trio_controller._native import DecodeError, ListAccumulator, Store, WatchDecoder
from trio_controller.cache.backoff import Backoff
from trio_controller.transport.client import Client
from trio_controller.transport.watch import WatchBody
from trio_controller.workqueue import WorkQueue

if TYPE_CHECKING:
    from trio_controller._native import WatchEvent
    from trio_controller.cache.informer import EventHandlers

log = logging.getLogger(__name__)

PAGE_SIZE = 500
WATCH_TIMEOUT_RANGE = (300.0, 600.0)  # the server ends each watch after 5 to 10 minutes
IDLE_MARGIN = 30.0  # no byte for this long past the server's timeout: the stream is stuck
SHORT_WATCH = 1.0  # a watch that ends sooner than this with no event is an error
# A 401/403 before the first sync is retried every AUTH_RETRY seconds for AUTH_GRACE
# seconds: a starting apiserver answers 403 until its RBAC is loaded (client-go synced
# about 1 s later, issue 11), while a set-up that is really broken still ends in one
# error line within seconds.
AUTH_GRACE = 10.0
AUTH_RETRY = 1.0


@dataclass(frozen=True)
class StreamList:
    """Watch with sendInitialEvents=true: the list arrives as events on the watch."""


@dataclass(frozen=True)
class Relist:
    """A paged list (limit/continue), then watch from its resourceVersion."""


@dataclass(frozen=True)
class Watch:
    resource_version: str


State = StreamList | Relist | Watch

# Errors that cannot heal by retrying before the first sync: fail loudly instead (401 and
# 403 only once `auth_grace` has passed: a starting apiserver answers 403 until its RBAC
# is loaded, and client-go syncs about a second later).
FATAL_BEFORE_SYNC = (
    errors.Unauthorized,
    errors.Forbidden,
    errors.TLSError,
    errors.ConnectionFailed,
)
AUTH_ERRORS = (errors.Unauthorized, errors.Forbidden)


class Reflector:
    """Keeps `store` equal to the server's view of `path`, enqueueing every changed key.

    Start it with `await nursery.start(reflector.run)`; `synced` is set once the first
    list (or the initial events of a streaming list) is in the store.
    """

    def __init__(
        self,
        client: Client,
        path: str,
        store: Store,
        queue: WorkQueue | None,
        *,
        params: Mapping[str, str] | None = None,
        streaming_list: bool = False,
        page_size: int = PAGE_SIZE,
        backoff: Backoff | None = None,
        fail_fast_before_sync: bool = True,
        auth_grace: float = AUTH_GRACE,
        kind: str = "*v1.Pod",
        rng: random.Random | None = None,
        handlers: EventHandlers | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.store = store
        self.queue = queue
        self.params = dict(params or {})
        # Python handlers see each event as dicts, so events take the slow path
        # (`WatchDecoder.feed`, one Python step per event); that path lists and watches.
        self.handlers = handlers
        self.streaming_list = streaming_list and handlers is None
        self.page_size = page_size
        self.backoff = backoff or Backoff()
        self.fail_fast_before_sync = fail_fast_before_sync
        self.auth_grace = auth_grace
        self.kind = kind
        self.rng = rng or random.Random()
        self.synced = trio.Event()
        self.decoder = WatchDecoder()
        # What metrics and health probes read (Trio times; updated per read, not per event).
        self.relists = 0  # how many times the cache was replaced (first list included)
        self.watch_restarts = 0  # watches started after the first one
        self.last_event_at: float | None = None  # an event or bookmark arrived
        self.last_activity_at = 0.0  # bytes arrived, or the loop moved to a new state
        self._listed = False  # the current list (or streaming list) reached the store
        self._watches = 0
        self._stream_events = 0  # events the current (or last) stream delivered
        self._started_at = 0.0
        self._acc: ListAccumulator | None = None  # the list being collected

    def listed_so_far(self) -> int:
        """Objects collected by the list (or streaming list) under way; 0 when none is."""
        acc = self._acc
        return len(acc) if acc is not None else 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        state: State = StreamList() if self.streaming_list else Relist()
        self._started_at = trio.current_time()
        task_status.started()
        while True:
            self.last_activity_at = trio.current_time()
            try:
                state = await self._step(state)
            except errors.Gone as exc:
                log.info("%s: %s; relisting", self._what(state), exc)
                state = Relist()
            except errors.TooManyRequests as exc:
                delay = exc.retry_after
                if delay is None:
                    delay = self.backoff.next_delay(trio.current_time())
                log.warning("%s: %s; retrying in %.1fs", self._what(state), exc, delay)
                await trio.sleep(delay)
            except FATAL_BEFORE_SYNC as exc:
                if self.fail_fast_before_sync and not self.synced.is_set():
                    waited = trio.current_time() - self._started_at
                    if not isinstance(exc, AUTH_ERRORS) or waited >= self.auth_grace:
                        raise
                    log.warning(
                        "%s: %s; retrying in %.1fs (RBAC of a starting server may still load)",
                        self._what(state),
                        exc,
                        AUTH_RETRY,
                    )
                    await trio.sleep(AUTH_RETRY)
                    continue
                if isinstance(exc, errors.ConnectionFailed) and self._dropped_after_events():
                    state = self._resume(state, exc)
                    continue
                state = await self._back_off(state, exc)
            except (errors.TrioControllerError, DecodeError) as exc:
                state = await self._back_off(state, exc)

    def _dropped_after_events(self) -> bool:
        """The stream that just broke had delivered events: client-go treats that as a
        normal end of the watch and re-watches at once (no backoff)."""
        return self._listed and self._stream_events > 0

    def _resume(self, state: State, exc: Exception) -> State:
        log.info("%s: %s; resuming from the last resourceVersion", self._what(state), exc)
        return self._after_failure(state)

    def _after_failure(self, state: State) -> State:
        """The state to retry: a watch resumes where it was."""
        if isinstance(state, Watch):
            return Watch(self.store.resource_version or state.resource_version)
        if self._listed:
            # A streaming list that failed after its initial events: just watch again.
            return Watch(self.store.resource_version or "")
        return state

    async def _back_off(self, state: State, exc: Exception) -> State:
        """Log `exc` and sleep before retrying `state` (a watch resumes where it was)."""
        delay = self.backoff.next_delay(trio.current_time())
        log.warning("%s: %s; retrying in %.1fs", self._what(state), exc, delay)
        await trio.sleep(delay)
        return self._after_failure(state)

    def _what(self, state: State) -> str:
        # A streaming list whose initial events are in is a watch from then on.
        verb = "watch" if isinstance(state, Watch) or self._listed else "list"
        return f"Failed to {verb} {self.kind} at {self.path}"

    async def _step(self, state: State) -> State:
        if isinstance(state, Watch):
            return await self._watch(state.resource_version)
        self._listed = False
        if isinstance(state, StreamList):
            try:
                return await self._stream_list()
            except errors.ApiError as exc:
                if exc.status not in (400, 422):
                    raise
                log.info("Streaming list is not supported here (%s); using list+watch", exc)
                self.streaming_list = False
                return Relist()
        return await self._list()

    # -- listing -----------------------------------------------------------------------

    async def _list(self) -> State:
        acc = self._acc = self._accumulator()
        params = {**self.params, "limit": str(self.page_size)}
        continue_token: str | None = None
        while True:
            page_params = dict(params)
            if continue_token:
                page_params["continue"] = continue_token
            try:
                body = await self.client.list_page(self.path, page_params)
            except errors.Gone:
                if continue_token is None:
                    raise
                # The continue token expired between pages: one consistent full list.
                log.info("List continue token expired; falling back to a full list")
                acc = self._acc = self._accumulator()
                params = dict(self.params)
                continue_token = None
                continue
            page = acc.feed_page(body)
            continue_token = page.continue_token
            if not continue_token:
                break
        resource_version = page.resource_version or ""
        self._replace(acc, resource_version)
        return Watch(resource_version)

    def _accumulator(self) -> ListAccumulator:
        """A side buffer for a (re)list that stores objects the way `store` keeps them."""
        return ListAccumulator(
            strip_managed_fields=self.store.strip_managed_fields, compress=self.store.compress
        )

    def _replace(self, acc: ListAccumulator, resource_version: str | None) -> None:
        self._acc = None
        result = self.store.replace(acc, resource_version)
        self.relists += 1
        self._listed = True
        if self.queue is not None:
            self.queue.add_many(result.added + result.updated + result.deleted)
        if self.handlers is not None:
            self._replaced(result.added, result.updated, result.tombstones)
        if result.deleted:
            log.info("Relist removed %d objects that no longer exist", len(result.deleted))
        if not self.synced.is_set():
            self.synced.set()

    # -- watching ----------------------------------------------------------------------

    def _watch_params(self) -> tuple[dict[str, str], float]:
        timeout = self.rng.uniform(*WATCH_TIMEOUT_RANGE)
        params = {
            **self.params,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(int(timeout)),
        }
        return params, timeout + IDLE_MARGIN

    async def _watch(self, resource_version: str) -> State:
        if self._watches:
            self.watch_restarts += 1
        self._watches += 1
        params, idle = self._watch_params()
        params["resourceVersion"] = resource_version
        started = trio.current_time()
        events = await self._consume(params, idle, initial=None)
        if events == 0 and trio.current_time() - started < SHORT_WATCH:
            # Something (a proxy, a dying server) closes watches at once: back off
            # instead of reconnecting in a tight loop, as client-go does.
            raise errors.TransportError(
                "very short watch: the stream ended within a second with no events"
            )
        return Watch(self.store.resource_version or resource_version)

    async def _stream_list(self) -> State:
        params, idle = self._watch_params()
        params.update({"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"})
        params["resourceVersion"] = ""
        initial = self._acc = self._accumulator()
        await self._consume(params, idle, initial=initial)
        if not self._listed:
            # The stream ended without the initial-events-end bookmark: a server too old
            # to know sendInitialEvents treats it as a plain watch. List instead.
            log.info("Streaming list ended before its initial events did; using list+watch")
            self.streaming_list = False
            return Relist()
        return Watch(self.store.resource_version or "")

    async def _consume(
        self, params: dict[str, str], idle: float, initial: ListAccumulator | None
    ) -> int:
        """Feed one watch stream into the store; returns how many events it carried.

        With `initial` (a streaming list), events up to the initial-events-end bookmark
        go into it, and it replaces the store's content when that bookmark arrives.
        """
        self._stream_events = 0
        async with self.client.watch(self.path, params, idle_timeout=idle) as body:
            self.decoder.reset(chunked=body.chunked, content_length=body.content_length)
            while not self.decoder.body_done:
                data = await body.receive()
                if not data:
                    self._end_of_connection(body)
                    break
                now = trio.current_time()
                self.last_activity_at = now
                if self.handlers is not None:
                    n = self._apply_with_handlers(data)
                else:
                    n = self._apply(data, now, initial)
                    if self._listed:
                        initial = None
                if n:
                    self._stream_events += n
                    self.last_event_at = now
        return self._stream_events

    def _end_of_connection(self, body: WatchBody) -> None:
        """The server closed the connection: the end of an unframed body, else a drop."""
        if body.chunked or body.content_length is not None:
            raise errors.ConnectionFailed(
                f"connection to {self.client.server} lost in the middle of the watch"
            )

    def _apply(self, data: bytes, now: float, initial: ListAccumulator | None) -> int:
        """One socket read's bytes through the Rust decoder into the store and queue."""
        queue = self.queue
        events = 0
        while True:
            try:
                result = self.decoder.feed_into(
                    data, self.store, queue.native if queue is not None else None, now, initial
                )
            except DecodeError:
                if queue is not None:
                    queue.wake()
                raise
            events += result.applied + result.bookmarks
            if result.applied and queue is not None:
                queue.wake()
            if result.error is not None:
                raise errors.from_watch_error(result.error)
            if result.initial_events_end and initial is not None:
                self._replace(initial, result.resource_version)
                initial = None
                data = b""
                continue
            return events

    # -- the Python-handler path ---------------------------------------------------------

    def _apply_with_handlers(self, data: bytes) -> int:
        """Apply a read's events one by one, calling the handlers with dicts.

        A malformed line applies nothing of its read: the store's resourceVersion stays
        before it, so the resumed watch delivers those events again.
        """
        events = self.decoder.feed(data)
        for event in events:
            self._apply_event(event)
        if self.queue is not None:
            self.queue.wake()
        return len(events)

    def _apply_event(self, event: WatchEvent) -> None:
        assert self.handlers is not None
        store, h = self.store, self.handlers
        if event.type == "ERROR":
            raise errors.from_watch_error(event)
        if event.type != "BOOKMARK":
            key = event.key or ""
            old = store.get(key)
            if event.type == "DELETED":
                store.delete(key)
                if h.on_delete is not None:
                    h.on_delete(old if old is not None else event.object())
            else:
                store.upsert(event.raw)
                new = store.get(key)
                assert new is not None
                if old is None:
                    if h.on_add is not None:
                        h.on_add(new)
                elif h.on_update is not None:
                    h.on_update(old, new)
        store.resource_version = event.resource_version

    def _replaced(self, added: list[str], updated: list[str], tombstones: dict[str, bytes]) -> None:
        """Handlers after a (re)list: adds, updates (old unknown: None), tombstone deletes."""
        assert self.handlers is not None
        h, store = self.handlers, self.store
        for key in added:
            if h.on_add is not None and (obj := store.get(key)) is not None:
                h.on_add(obj)
        for key in updated:
            if h.on_update is not None and (obj := store.get(key)) is not None:
                h.on_update(None, obj)
        if h.on_delete is not None:
            for raw in tombstones.values():
                h.on_delete(orjson.loads(raw))
