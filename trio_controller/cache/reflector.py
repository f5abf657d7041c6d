"""List, then watch, forever: client-go's reflector as a visible state machine.

Every transition is one case of `next_state(state, outcome)`, a pure function (tested
without I/O); `Reflector.run` only performs a state's step, asks `next_state` where to
go, waits as told and logs.

    StreamList ──(initial-events-end bookmark: replace the store)──▶ Watch(rv), same stream
    StreamList ──(server lacks it: 400/422 naming sendInitialEvents, or no bookmark)──▶ Relist
    StreamList ──(dropped before its initial events end)──▶ StreamList (client-go's watchList
           loop), at once if the stream delivered events, else after backoff
    StreamList ──(any other error before its initial events end)──▶ Relist, at once
    Relist ──(pages into a side buffer, replace the store)──▶ Watch(rv)
    Watch(rv) ──(stream ends normally)──▶ Watch(last rv), at once
    Watch(rv) ──(connection dropped after it delivered events or was open ≥ 1 s)──▶
           Watch(last rv), at once
    any ──(410 Gone: ERROR event or response)──▶ Relist, at once
    any ──(429)──▶ same state after Retry-After
    any ──(other error: refused, stalled, malformed line, 5xx, a watch that ends
           within a second with no event)──▶ same state, a watch from its last rv,
           after backoff (0.8 s → 30 s, jitter, reset after 2 quiet minutes)
    before the first sync, 401/403 ──▶ same state every second for `auth_grace` seconds
           (RBAC of a starting apiserver), then raised; TLS/unreachable ──▶ raised
    before the first sync, 400/404/406/422 (a bad selector, a resource that does not
           exist) ──▶ same state after backoff for `permanent_grace` seconds (a CRD being
           established), then `ListFailed`

The sink (cache/sink.py, the Rust informer core) owns the decoder and the watch
position: the reflector hands it each stream's response head once (`sink.begin`), then
each socket read in one call (`sink.apply`; over native TLS `sink.apply_tls` with the
stream's rustls session, so the core decrypts too), which applies the events to the store and
fans them out to queues and Python consumers; the reflector asks it for the position
(`sink.resource_version`) and whether the body ended (`sink.body_done`). A relist
collects every page in a Rust `ListAccumulator` and swaps it in whole (`sink.replace`),
so readers never see a half-listed cache and keys that vanished in a gap come back as
tombstones.

Logs: WARNING for failures, V(2) for relists and watch restarts with their counts,
V(4) for list pages, watch starts, resourceVersions and bookmarks (per page or per
watch, never per event).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import trio

from trio_controller import errors
from trio_controller._native import (
    DecodeError,
    ListAccumulator,
    ReplaceResult,
    Store,
    TlsSession,
    TlsSessionError,
)
from trio_controller.cache.backoff import Backoff
from trio_controller.cache.options import PAGE_SIZE
from trio_controller.cache.sink import Sink
from trio_controller.observe.log import v
from trio_controller.transport.client import Client
from trio_controller.transport.watch import WatchBody

__all__ = [
    "AUTH_GRACE",
    "PERMANENT_GRACE",
    "Failed",
    "GiveUp",
    "ListFailed",
    "Listed",
    "Next",
    "Reflector",
    "Relist",
    "State",
    "StreamList",
    "StreamListUnsupported",
    "Watch",
    "WatchEnded",
    "next_state",
]

log = logging.getLogger(__name__)

WATCH_TIMEOUT_RANGE = (300.0, 600.0)  # the server ends each watch after 5 to 10 minutes
IDLE_MARGIN = 30.0  # no byte for this long past the server's timeout: the stream is stuck
SHORT_WATCH = 1.0  # a watch that ends sooner than this with no event is an error
# A 401/403 before the first sync is retried every AUTH_RETRY seconds for AUTH_GRACE
# seconds: a starting apiserver answers 403 until its RBAC is loaded (client-go synced
# about 1 s later, issue 11), while a set-up that is really broken still ends in one
# error line within seconds.
AUTH_GRACE = 10.0
AUTH_RETRY = 1.0
# A list answered 404 (no such resource) or 400/422 (a bad selector) before the first
# sync is retried with backoff for PERMANENT_GRACE seconds (a CRD created just before
# is served a few seconds after it is Established), then ends in `ListFailed`.
PERMANENT_GRACE = 10.0
PERMANENT_STATUSES = frozenset({400, 404, 405, 406, 415, 422})

# PartialObjectMetadata: what a metadata-only informer asks for (client-go's metadata
# client: the list as a PartialObjectMetadataList, each watch event as one object).
METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_WATCH_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


class ListFailed(errors.TrioControllerError):
    """The list of a resource failed in a way retrying does not heal (404: it does not
    exist; 400: a bad selector), for longer than `permanent_grace`."""


# -- states --------------------------------------------------------------------------------


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

# -- outcomes of a step ---------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """The list (or a streaming list's initial events) replaced the store; for a
    streaming list the same stream then went on as a watch and ended normally."""

    resource_version: str


@dataclass(frozen=True)
class WatchEnded:
    """The server ended the watch (its timeout, or the end of the body)."""

    resource_version: str  # the last one applied
    events: int  # events and bookmarks it delivered
    seconds: float  # how long it lasted


@dataclass(frozen=True)
class StreamListUnsupported:
    """The server does not do streaming lists (WatchList): list and watch for good."""

    why: str


@dataclass(frozen=True)
class Failed:
    """The step raised `error`. The facts `next_state` decides on come with it."""

    error: Exception
    resource_version: str  # the store's: where a watch resumes
    listed: bool = False  # the current list (or streaming list) reached the store
    delivered: bool = False  # the stream that broke had delivered events
    lasted: float = 0.0  # seconds the broken stream had been open (0: it never opened)
    synced: bool = False  # the reflector has synced once
    waited: float = 0.0  # seconds since the reflector started
    fail_fast: bool = True  # before the first sync, errors that cannot heal are raised
    auth_grace: float = AUTH_GRACE
    permanent_grace: float = PERMANENT_GRACE


Outcome = Listed | WatchEnded | StreamListUnsupported | Failed

# -- transitions ----------------------------------------------------------------------------

Wait = Literal["now", "backoff"] | float  # at once, the backoff policy's delay, or seconds


@dataclass(frozen=True)
class Next:
    """Go to `state` after `wait`; `note` says why, for the failure's log line."""

    state: State
    wait: Wait = "now"
    note: str = ""
    level: int = logging.WARNING  # of the failure's log line
    streaming_list: bool | None = None  # False: stop trying streaming lists


@dataclass(frozen=True)
class GiveUp:
    """Stop: raise `error`."""

    error: Exception


# Unreachable (refused, unresolvable), TLS and auth failures are raised before the first
# sync; a connection lost after the server answered (ConnectionLost: a torn list page, a
# streaming list dropped mid-chunk, an apiserver restarting) is retried like any drop.
FATAL_BEFORE_SYNC = (
    errors.Unauthorized,
    errors.Forbidden,
    errors.TLSError,
    errors.ConnectionFailed,
)
AUTH_ERRORS = (errors.Unauthorized, errors.Forbidden)


def _retry_state(state: State, outcome: Failed) -> State:
    """The state to retry after a failure: a watch resumes where it was."""
    if isinstance(state, Watch):
        return Watch(outcome.resource_version or state.resource_version)
    if outcome.listed:
        # A streaming list that failed after its initial events: just watch again.
        return Watch(outcome.resource_version)
    return state


def next_state(state: State, outcome: Outcome) -> Next | GiveUp:
    """Where the reflector goes from `state` after `outcome`: every transition is here."""
    match outcome:
        case Listed(rv):
            return Next(Watch(rv))
        case WatchEnded(rv, events, seconds) if events == 0 and seconds < SHORT_WATCH:
            # Something (a proxy, a dying server) closes watches at once: back off
            # instead of reconnecting in a tight loop, as client-go does.
            note = "very short watch: the stream ended within a second with no events"
            return Next(Watch(rv), "backoff", note)
        case WatchEnded(rv):
            return Next(Watch(rv))
        case StreamListUnsupported():
            return Next(Relist(), note="using list+watch", level=logging.INFO, streaming_list=False)
        case Failed(error=errors.Gone()):
            return Next(Relist(), note="relisting", level=logging.INFO)
        case Failed(error=errors.TooManyRequests() as exc):
            after: Wait = exc.retry_after if exc.retry_after is not None else "backoff"
            return Next(_retry_state(state, outcome), after)
        case Failed(error=exc, synced=False, fail_fast=True) if isinstance(
            exc, FATAL_BEFORE_SYNC
        ) and not isinstance(exc, errors.ConnectionLost):
            if isinstance(exc, AUTH_ERRORS) and outcome.waited < outcome.auth_grace:
                note = "(RBAC of a starting server may still load)"
                return Next(_retry_state(state, outcome), AUTH_RETRY, note)
            return GiveUp(exc)
        case Failed(error=errors.ApiError(status=status) as exc, synced=False, fail_fast=True) if (
            status in PERMANENT_STATUSES
        ):
            if outcome.waited < outcome.permanent_grace:
                note = "(a new resource may still be being established)"
                return Next(_retry_state(state, outcome), "backoff", note)
            return GiveUp(exc)
        case Failed(error=errors.ConnectionFailed(), listed=True) if outcome.delivered or (
            isinstance(outcome.error, errors.ConnectionLost) and outcome.lasted >= SHORT_WATCH
        ):
            # A broken stream that had delivered events, or had been open a second or
            # more, is a normal watch end for client-go (its "very short watch" rule backs
            # off only under a second with no event): re-watch at once (issue 11; the soak
            # saw 133 s blind when quiet watches reset every 10 s backed off instead).
            note = "resuming from the last resourceVersion"
            return Next(_retry_state(state, outcome), note=note, level=logging.INFO)
        case Failed(error=errors.ConnectionFailed(), listed=False) if isinstance(state, StreamList):
            # A dropped stream is a closed watch to client-go's watchList, which asks for
            # the streaming list again (at once if it was making progress).
            wait: Wait = "now" if outcome.delivered else "backoff"
            return Next(StreamList(), wait, "retrying the streaming list", logging.INFO)
        case Failed(listed=False) if isinstance(state, StreamList):
            # client-go: "falling back to the standard LIST/WATCH semantics because
            # making progress is better than deadlocking"; the list backs off if it fails.
            return Next(Relist(), note="falling back to list+watch")
        case Failed():
            return Next(_retry_state(state, outcome), "backoff")
    raise AssertionError(f"unhandled outcome {outcome!r}")  # pragma: no cover


def streaming_list_unsupported(exc: errors.ApiError) -> bool:
    """A 400/422 to a streaming list that is about the streaming list itself (the
    WatchList feature off, an old server), not about the request (a bad selector)."""
    if exc.status not in (400, 422):
        return False
    text = exc.message.lower()
    return any(word in text for word in ("sendinitialevents", "resourceversionmatch", "watchlist"))


# -- the reflector --------------------------------------------------------------------------


class Reflector:
    """Keeps `sink.store` equal to the server's view of `path`, feeding every change to
    the sink's targets (cache/sink.py's `CoreSink`: queues fed in Rust).

    Start it with `await nursery.start(reflector.run)`; `synced` is set once the first
    list (or the initial events of a streaming list) is in the store. `kind` names the
    resource in logs (`Resource.display`: `*v1.Pod`, `*example.com/v1.Widget`).
    """

    def __init__(
        self,
        client: Client,
        path: str,
        sink: Sink,
        *,
        params: Mapping[str, str] | None = None,
        streaming_list: bool = False,
        metadata_only: bool = False,
        page_size: int = PAGE_SIZE,
        backoff: Backoff | None = None,
        fail_fast_before_sync: bool = True,
        auth_grace: float = AUTH_GRACE,
        permanent_grace: float = PERMANENT_GRACE,
        kind: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.path = path
        #: Where events go: the store and its targets.
        self.sink: Sink = sink
        self.params = dict(params or {})
        self.streaming_list = streaming_list
        self.metadata_only = metadata_only
        self.page_size = page_size
        self.backoff = backoff or Backoff()
        self.fail_fast_before_sync = fail_fast_before_sync
        self.auth_grace = auth_grace
        self.permanent_grace = permanent_grace
        self.kind = kind or path
        self.rng = rng or random.Random()
        self.synced = trio.Event()
        # What metrics and health probes read (Trio times; updated per read, not per event).
        self.relists = 0  # how many times the cache was replaced (first list included)
        self.watch_restarts = 0  # watches started after the first one
        self.last_event_at: float | None = None  # an event or bookmark arrived
        self.last_activity_at = 0.0  # bytes arrived, or the loop moved to a new state
        self._listed = False  # the current list (or streaming list) reached the store
        self._watches = 0
        self._stream_events = 0  # events the current (or last) stream delivered
        self._stream_opened_at: float | None = None  # when its response head arrived
        self._stream_bookmarks = 0
        self._started_at = 0.0
        self._acc: ListAccumulator | None = None  # the list being collected

    @property
    def store(self) -> Store:
        return self.sink.store

    @property
    def resource_version(self) -> str | None:
        """The watch position, as the informer core holds it (None before the first list)."""
        return self.sink.resource_version

    def counts(self) -> dict[str, int]:
        """Watch events the core decoded so far, by type: ADDED, MODIFIED, DELETED,
        BOOKMARK, ERROR (for metrics; counted in Rust)."""
        return self.sink.counts()

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
                outcome = await self._step(state)
            except (errors.TrioControllerError, DecodeError) as exc:
                outcome = self._failed(exc)
            step = next_state(state, outcome)
            if isinstance(step, GiveUp):
                raise self._final(state, step.error)
            if step.streaming_list is False:
                self.streaming_list = False
            await self._wait(state, outcome, step)
            state = step.state

    def _failed(self, exc: Exception) -> Failed:
        return Failed(
            exc,
            self.resource_version or "",
            listed=self._listed,
            delivered=self._stream_events > 0,
            lasted=(
                trio.current_time() - self._stream_opened_at
                if self._stream_opened_at is not None
                else 0.0
            ),
            synced=self.synced.is_set(),
            waited=trio.current_time() - self._started_at,
            fail_fast=self.fail_fast_before_sync,
            auth_grace=self.auth_grace,
            permanent_grace=self.permanent_grace,
        )

    def _final(self, state: State, exc: Exception) -> Exception:
        """What `run` raises: the error itself, or `ListFailed` naming the resource."""
        if isinstance(exc, errors.ApiError) and exc.status in PERMANENT_STATUSES:
            failure = ListFailed(f"cannot list {self.kind} at {self.path}: {exc}")
            failure.__cause__ = exc
            return failure
        return exc

    async def _wait(self, state: State, outcome: Outcome, step: Next) -> None:
        """Log a failure or fallback, then sleep as `step` says."""
        wait = step.wait
        delay = 0.0
        if wait == "backoff":
            delay = self.backoff.next_delay(trio.current_time())
        elif not isinstance(wait, str):
            delay = wait
        if isinstance(outcome, StreamListUnsupported):
            log.info("Streaming list is not supported here (%s); %s", outcome.why, step.note)
        elif isinstance(outcome, Failed) or (isinstance(outcome, WatchEnded) and wait != "now"):
            cause = outcome.error if isinstance(outcome, Failed) else step.note
            note = step.note if isinstance(outcome, Failed) else ""
            if wait == "now":
                log.log(step.level, "%s: %s; %s", self._what(state), cause, note)
            else:
                log.log(
                    step.level,
                    "%s: %s; retrying in %.1fs%s",
                    self._what(state),
                    cause,
                    delay,
                    f" {note}" if note else "",
                )
        if delay > 0:
            await trio.sleep(delay)

    def _what(self, state: State) -> str:
        # A streaming list whose initial events are in is a watch from then on.
        verb = "watch" if isinstance(state, Watch) or self._listed else "list"
        return f"Failed to {verb} {self.kind} at {self.path}"

    async def _step(self, state: State) -> Outcome:
        if isinstance(state, Watch):
            return await self._watch(state.resource_version)
        self._listed = False
        self._stream_events = 0
        if isinstance(state, StreamList):
            try:
                return await self._stream_list()
            except errors.ApiError as exc:
                if not streaming_list_unsupported(exc):
                    raise
                return StreamListUnsupported(str(exc))
        return await self._list()

    # -- listing -----------------------------------------------------------------------

    async def _list(self) -> Outcome:
        acc = self._acc = self._accumulator()
        params = {**self.params, "limit": str(self.page_size)}
        accept = METADATA_LIST_ACCEPT if self.metadata_only else None
        continue_token: str | None = None
        pages = 0
        while True:
            page_params = dict(params)
            if continue_token:
                page_params["continue"] = continue_token
            try:
                body = await self.client.list_page(self.path, page_params, accept=accept)
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
            pages += 1
            continue_token = page.continue_token
            log.log(
                v(4),
                "List page %d of %s at %s: %d items at resourceVersion %s%s",
                pages,
                self.kind,
                self.path,
                page.items,
                page.resource_version,
                ", more to come" if continue_token else "",
            )
            if not continue_token:
                break
        resource_version = page.resource_version or ""
        self._replace(acc, resource_version)
        return Listed(resource_version)

    def _accumulator(self) -> ListAccumulator:
        """A side buffer for a (re)list that stores objects the way `store` keeps them."""
        return ListAccumulator(
            strip_managed_fields=self.store.strip_managed_fields, compress=self.store.compress
        )

    def _replace(self, acc: ListAccumulator, resource_version: str | None) -> None:
        self._acc = None
        n = len(acc)
        result: ReplaceResult = self.sink.replace(acc, resource_version)
        added, updated, deleted = result.counts
        self.relists += 1
        self._listed = True
        log.log(
            v(2),
            "Listed %s at %s: %d objects at resourceVersion %s (%d new, %d updated, "
            "%d deleted; list %d)",
            self.kind,
            self.path,
            n,
            resource_version,
            added,
            updated,
            deleted,
            self.relists,
            extra={"objects": n, "relists": self.relists},
        )
        if deleted:
            log.info("Relist removed %d objects that no longer exist", deleted)
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

    async def _watch(self, resource_version: str) -> Outcome:
        if self._watches:
            self.watch_restarts += 1
            log.log(
                v(2),
                "Restarting the watch of %s at %s from resourceVersion %s (restart %d; the "
                "last stream delivered %d events)",
                self.kind,
                self.path,
                resource_version,
                self.watch_restarts,
                self._stream_events,
                extra={"watch_restarts": self.watch_restarts, "events": self._stream_events},
            )
        self._watches += 1
        params, idle = self._watch_params()
        params["resourceVersion"] = resource_version
        log.log(
            v(4),
            "Watching %s at %s from resourceVersion %s (timeoutSeconds %s)",
            self.kind,
            self.path,
            resource_version,
            params["timeoutSeconds"],
        )
        started = trio.current_time()
        events = await self._consume(params, idle, initial=None)
        rv = self.resource_version or resource_version
        return WatchEnded(rv, events, trio.current_time() - started)

    async def _stream_list(self) -> Outcome:
        params, idle = self._watch_params()
        params.update({"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"})
        params["resourceVersion"] = ""
        log.log(v(4), "Streaming the list of %s at %s", self.kind, self.path)
        initial = self._acc = self._accumulator()
        await self._consume(params, idle, initial=initial)
        if not self._listed:
            # The stream ended without the initial-events-end bookmark: a server too old
            # to know sendInitialEvents treats it as a plain watch. List instead.
            self._acc = None
            return StreamListUnsupported("the stream ended before its initial events did")
        return Listed(self.resource_version or "")

    async def _consume(
        self, params: dict[str, str], idle: float, initial: ListAccumulator | None
    ) -> int:
        """Feed one watch stream to the sink; returns how many events it carried.

        With `initial` (a streaming list), events up to the initial-events-end bookmark
        go into it, and it replaces the store's content when that bookmark arrives.
        """
        self._stream_events = 0
        self._stream_bookmarks = 0
        self._stream_opened_at = None
        accept = METADATA_WATCH_ACCEPT if self.metadata_only else None
        try:
            async with self.client.watch(
                self.path, params, idle_timeout=idle, accept=accept
            ) as body:
                self._stream_opened_at = trio.current_time()
                self.sink.begin(body.head)  # the core frames the body from here on
                # Over native TLS each read goes to the core still encrypted; what came
                # with the head was decrypted with it and goes first, as plaintext.
                tls = body.tls
                receive = body.receive if tls is None else body.receive_encrypted
                pending = body.take_first()
                while not self.sink.body_done:
                    session = tls
                    if pending:
                        data, pending, session = pending, b"", None
                    else:
                        data = await receive()
                        if not data:
                            self._end_of_connection(body)
                            break
                    now = trio.current_time()
                    self.last_activity_at = now
                    n = self._apply(data, now, initial, session, body)
                    if self._listed:
                        initial = None
                    if n:
                        self._stream_events += n
                        self.last_event_at = now
        finally:
            if self._stream_events:
                log.log(
                    v(4),
                    "Watch stream of %s ended after %d events (%d bookmarks), at "
                    "resourceVersion %s",
                    self.kind,
                    self._stream_events,
                    self._stream_bookmarks,
                    self.resource_version,
                )
        return self._stream_events

    def _end_of_connection(self, body: WatchBody) -> None:
        """The server closed the connection: the end of an unframed body, else a drop."""
        if body.chunked or body.content_length is not None:
            raise errors.ConnectionLost(
                f"connection to {self.client.server} lost in the middle of the watch"
            )

    def _apply(
        self,
        data: bytes | memoryview,
        now: float,
        initial: ListAccumulator | None,
        session: TlsSession | None,
        body: WatchBody,
    ) -> int:
        """One socket read's bytes through the sink (still encrypted with `session`, the
        body's rustls session); returns the events it held."""
        events = 0
        while True:
            if session is None:
                fed = self.sink.apply(data, now, initial)
            else:
                try:
                    fed = self.sink.apply_tls(session, data, now, initial)
                except TlsSessionError as exc:
                    raise body.tls_error(exc) from None
                session = None  # what the read held is decrypted: go on in plaintext
            events += fed.applied + fed.bookmarks
            self._stream_bookmarks += fed.bookmarks
            if fed.error is not None:
                raise errors.from_watch_error(fed.error)
            if fed.initial_events_end and initial is not None:
                log.log(
                    v(4),
                    "Initial events of %s end at resourceVersion %s (bookmark)",
                    self.kind,
                    fed.resource_version,
                )
                self._replace(initial, fed.resource_version)
                initial = None
                data = b""
                continue
            return events
