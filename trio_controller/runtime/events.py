"""Kubernetes Events (`events.k8s.io/v1`) about objects, aggregated into series the way
client-go's `tools/events` broadcaster does, sent by one background task.

    recorder = EventRecorder(client, "example.com/widget-controller")
    await nursery.start(recorder.run)
    recorder.event(widget, WARNING, "FailedSync", "bucket s3://x is gone", action="Sync")

`event()` is synchronous and never blocks or raises for the apiserver: it puts the
occurrence on a bounded memory channel (full: dropped, with a log line, as client-go's
broadcaster drops) and `run` writes it. Send errors are logged, never raised.

Aggregation, per key = (regarding without its resourceVersion, related, type, reason,
action, note); the recorder's reportingController is the same for all its events:

    1st occurrence              POST the Event (no series)
    2nd                         PATCH series {count: 2, lastObservedTime} at once
    3rd, 4th, ...               count += 1 in memory; written every `refresh_interval`
                                while it changes, and when the series finishes
    none for `finish_after`     the series is finished (final count written) and
    (client-go's 6 minutes)     forgotten: the next occurrence POSTs a new Event

client-go keys on the whole ObjectReference (its resourceVersion too) and leaves the note
out; we follow tools/record instead: a new resourceVersion (every status write) would
otherwise defeat aggregation, and since a series PATCH changes only `series`, repeats
with another note would vanish into an Event showing the first one. client-go refreshes
series every 30 minutes; we write a series that changed every 30 s (`refresh_interval`),
so counts show while a problem lasts, at most one PATCH per series per interval.
A PATCH answered 404 (the Event expired or was deleted) creates the Event again with its
series, as client-go does. Errors without an answer (connection, 5xx, 429) are retried
up to 12 times 10 s apart (client-go's numbers), holding later events back meanwhile.

Clocks: windows use Trio time (`trio.current_time()`, so `MockClock` drives them);
the timestamps written (`eventTime`, `lastObservedTime`, the name suffix) come from
`wall_clock`, a `datetime.now(UTC)` unless a test fixes it.
"""

from __future__ import annotations

import logging
import math
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from trio_controller import errors
from trio_controller.api.resource import EVENTS, Resource
from trio_controller.transport.client import Client

__all__ = [
    "NORMAL",
    "WARNING",
    "EventRecorder",
    "micro_time",
    "object_reference",
]

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"

MAX_NOTE_BYTES = 1024  # the apiserver's limit on `note` (events validation)
MAX_FIELD_LENGTH = 128  # reason, action, reportingInstance
MAX_NAME_LENGTH = 253  # an Event's name is a DNS subdomain
MERGE_PATCH = "application/merge-patch+json"

_RETRIED = (errors.TransportError, errors.ServerError, errors.TooManyRequests)

WallClock = Callable[[], datetime]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micro_time(when: datetime) -> str:
    """A `MicroTime`: RFC 3339 in UTC with microseconds, `2026-01-02T03:04:05.000006Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def object_reference(obj: Mapping[str, Any], resource: Resource | None = None) -> dict[str, str]:
    """The ObjectReference of `obj`: apiVersion, kind, namespace, name, uid,
    resourceVersion (the keys it has). Objects from a list carry no apiVersion or kind:
    pass their `resource` then."""
    metadata = obj.get("metadata") or {}
    ref = {
        "apiVersion": obj.get("apiVersion") or (resource.api_version if resource else ""),
        "kind": obj.get("kind") or (resource.kind if resource else ""),
        "namespace": metadata.get("namespace") or "",
        "name": metadata.get("name") or "",
        "uid": metadata.get("uid") or "",
        "resourceVersion": metadata.get("resourceVersion") or "",
    }
    if not ref["kind"] or not ref["apiVersion"] or not ref["name"]:
        raise ValueError("an event needs an object with apiVersion, kind and a name")
    return {key: value for key, value in ref.items() if value}


def _truncate_bytes(text: str, limit: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode(errors="ignore")


def _event_name(object_name: str, when: datetime) -> str:
    """`<object name>.<wall-clock nanoseconds in hex>`, as client-go names them."""
    nanoseconds = (when - _EPOCH) // timedelta(microseconds=1) * 1000
    suffix = f".{nanoseconds:x}"
    prefix = object_name[: MAX_NAME_LENGTH - len(suffix)].rstrip(".-")
    return prefix + suffix


@dataclass(frozen=True)
class _Occurrence:
    """One `event()` call, with its two times taken when it was made."""

    key: tuple[Any, ...]
    regarding: dict[str, str]
    related: dict[str, str] | None
    type: str
    reason: str
    action: str
    note: str
    seen_at: float  # Trio time
    wall: datetime


@dataclass
class _Series:
    """An Event the apiserver has (or is being sent), and its repeats since."""

    body: dict[str, Any]  # as created: name, namespace, everything but series
    seen_at: float  # Trio time of the last occurrence
    count: int = 1  # occurrences; a series from 2 on
    last_observed: str = ""  # MicroTime of the last occurrence
    written: int = 1  # the count the apiserver has
    written_at: float = field(default=-math.inf)

    @property
    def dirty(self) -> bool:
        return self.count > self.written


class EventRecorder:
    """Records Events for one reporting controller (e.g. `example.com/widgets`).

        recorder.event(widget, "Normal", "Reconciled", "created ConfigMap", action="Sync")

    The type is the string `"Normal"` or `"Warning"` (also `events.NORMAL`/`WARNING`).
    `reporting_instance` defaults to `<controller>-<hostname>` (client-go). `capacity`
    bounds the occurrences waiting to be sent (client-go: 1000). Nothing starts in the
    constructor: a `Manager` runs the recorders it hands out (`manager.event_recorder(
    name)`) and drains them on stop; by hand, `await nursery.start(recorder.run)`, and
    `recorder.close()` + `await recorder.closed()` to send what is waiting.

    Where Events land: an Event lives in the namespace of the object it is about; one
    about a cluster-scoped object (a Namespace, a Node, a ClusterRole) lives in
    `default`, as client-go puts it (`kubectl get events -n default`,
    `Api(client, EVENTS, "default")`; its `regarding` names the object).

    A repeated Event is one Event: the same object, type, reason, action and note
    recorded again within `finish_after` (6 minutes) is not a new Event but a `series`
    on the first one, whose `series.count` grows (2 at once, then every
    `refresh_interval`). A test counting occurrences adds up `series.count` (1 for an
    Event without a series), not Events.
    """

    def __init__(
        self,
        client: Client,
        reporting_controller: str,
        *,
        reporting_instance: str | None = None,
        capacity: int = 1000,
        finish_after: float = 6 * 60.0,
        refresh_interval: float = 30.0,
        max_tries: int = 12,
        retry_delay: float = 10.0,
        wall_clock: WallClock = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        if not reporting_controller:
            raise ValueError("reporting_controller is required")
        self.client = client
        self.reporting_controller = reporting_controller
        instance = reporting_instance or f"{reporting_controller}-{socket.gethostname()}"
        self.reporting_instance = instance[:MAX_FIELD_LENGTH]
        self.finish_after = finish_after
        self.refresh_interval = refresh_interval
        self.max_tries = max_tries
        self.retry_delay = retry_delay
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.capacity = capacity
        self.dropped = 0  # occurrences dropped on a full channel, ever
        self._unreported_drops = 0
        self._send, self._receive = trio.open_memory_channel[_Occurrence](capacity)
        self._series: dict[tuple[Any, ...], _Series] = {}
        self._due = math.inf  # Trio time of the earliest refresh or finish
        self._started = False
        self._done = trio.Event()

    # -- the reconcile side: synchronous, never blocks ---------------------------------

    def event(
        self,
        obj: Mapping[str, Any],
        type: str,
        reason: str,
        note: str,
        *,
        action: str,
        related: Mapping[str, Any] | None = None,
        resource: Resource | None = None,
    ) -> None:
        """Record that `action` happened to `obj` (`type` "Normal" or "Warning", `reason` a
        CamelCase word, `note` for humans, cut to 1 KB). Returns at once; the Event is
        written by `run`, in `obj`'s namespace (`default` for a cluster-scoped object); a
        repeat within `finish_after` grows that Event's `series.count` instead of
        writing another Event. `related` is a second object involved; `resource` supplies
        apiVersion and kind to objects without them. Raises ValueError only for
        arguments the apiserver would refuse. Call it in the Trio thread; a reconcile
        running in a worker thread uses `trio.from_thread.run_sync(recorder.event, ...)`."""
        if type not in (NORMAL, WARNING):
            raise ValueError(f"event type must be {NORMAL!r} or {WARNING!r}, not {type!r}")
        if not reason or not action:
            raise ValueError("an event needs a reason and an action")
        regarding = object_reference(obj, resource)
        related_ref = object_reference(related) if related is not None else None
        note = _truncate_bytes(note, MAX_NOTE_BYTES)
        reason, action = reason[:MAX_FIELD_LENGTH], action[:MAX_FIELD_LENGTH]
        key = (
            tuple(sorted((k, v) for k, v in regarding.items() if k != "resourceVersion")),
            tuple(sorted(related_ref.items())) if related_ref else None,
            type,
            reason,
            action,
            note,
        )
        occurrence = _Occurrence(
            key,
            regarding,
            related_ref,
            type,
            reason,
            action,
            note,
            trio.current_time(),
            self.wall_clock(),
        )
        log.debug(
            "Event occurred object=%s/%s kind=%s type=%s reason=%s action=%s note=%r",
            regarding.get("namespace", ""),
            regarding["name"],
            regarding["kind"],
            type,
            reason,
            action,
            note,
        )
        try:
            self._send.send_nowait(occurrence)
        except trio.WouldBlock:
            self.dropped += 1
            if not self._unreported_drops:
                log.warning(
                    "event channel full (%d waiting): dropping event %s %s on %s %s/%s",
                    self.capacity,
                    type,
                    reason,
                    regarding["kind"],
                    regarding.get("namespace", ""),
                    regarding["name"],
                )
            self._unreported_drops += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("event recorder stopped: event %s on %s not sent", reason, regarding)

    def statistics(self) -> dict[str, int]:
        """Occurrences waiting, dropped so far, and Events being aggregated."""
        waiting = self._send.statistics().current_buffer_used
        return {"waiting": waiting, "dropped": self.dropped, "series": len(self._series)}

    # -- the sending task -------------------------------------------------------------

    def close(self) -> None:
        """Take no more events: `run` sends those still waiting, writes the series'
        counts and returns (`await recorder.closed()`). Events recorded after this are
        not sent (a debug line says so)."""
        self._send.close()

    async def closed(self) -> None:
        """Until `run` has returned (at once if it never started)."""
        if self._started:
            await self._done.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send events until `close()` (then send what is waiting, and return) or until
        cancelled (what is waiting is dropped); either way changed series' counts are
        written last (2 s at most)."""
        self._started = True
        task_status.started()
        try:
            while True:
                occurrence = None
                with trio.move_on_at(self._due):
                    try:
                        occurrence = await self._receive.receive()
                    except trio.EndOfChannel:
                        break
                if self._unreported_drops:
                    log.warning("dropped %d events: the channel was full", self._unreported_drops)
                    self._unreported_drops = 0
                if occurrence is not None:
                    await self._record(occurrence)
                if trio.current_time() >= self._due:
                    await self._maintain()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                for series in list(self._series.values()):
                    if series.dirty:
                        await self._write_series(series, retry=False)
            self._done.set()

    def _series_due(self, series: _Series) -> float:
        due = series.seen_at + self.finish_after
        if series.dirty:
            due = min(due, series.written_at + self.refresh_interval)
        return due

    async def _maintain(self) -> None:
        """Write series that changed and are due; finish and forget quiet ones."""
        now = trio.current_time()
        for key, series in list(self._series.items()):
            if now >= series.seen_at + self.finish_after:
                await self._finish(key, series)
            elif series.dirty and now >= series.written_at + self.refresh_interval:
                await self._write_series(series)
        self._due = min(map(self._series_due, self._series.values()), default=math.inf)

    async def _finish(self, key: tuple[Any, ...], series: _Series) -> None:
        if series.dirty:
            await self._write_series(series)
        if self._series.get(key) is series:
            del self._series[key]

    async def _record(self, occurrence: _Occurrence) -> None:
        # A quiet series has been finished by now: `run` maintains before the next
        # occurrence whenever a deadline has passed, and occurrences come in call order.
        series = self._series.get(occurrence.key)
        if series is None:
            series = _Series(self._new_event(occurrence), occurrence.seen_at)
            self._series[occurrence.key] = series
            if await self._create(series) is None:
                del self._series[occurrence.key]  # the next occurrence tries again
            else:
                self._due = min(self._due, self._series_due(series))
            return
        series.count += 1
        series.seen_at = occurrence.seen_at
        series.last_observed = micro_time(occurrence.wall)
        if series.count == 2:  # client-go: the Event becomes a series at once
            await self._write_series(series)
        self._due = min(self._due, self._series_due(series))

    def _new_event(self, occurrence: _Occurrence) -> dict[str, Any]:
        regarding = occurrence.regarding
        event: dict[str, Any] = {
            "apiVersion": EVENTS.api_version,
            "kind": EVENTS.kind,
            "metadata": {
                "name": _event_name(regarding["name"], occurrence.wall),
                # Events about cluster-scoped objects go to "default" (client-go).
                "namespace": regarding.get("namespace") or "default",
            },
            "eventTime": micro_time(occurrence.wall),
            "reportingController": self.reporting_controller,
            "reportingInstance": self.reporting_instance,
            "action": occurrence.action,
            "reason": occurrence.reason,
            "type": occurrence.type,
            "note": occurrence.note,
            "regarding": regarding,
        }
        if occurrence.related is not None:
            event["related"] = occurrence.related
        return event

    def _path(self, series: _Series, name: bool = False) -> str:
        metadata = series.body["metadata"]
        return EVENTS.path(metadata["namespace"], metadata["name"] if name else None)

    def _series_field(self, series: _Series) -> dict[str, Any]:
        return {"count": series.count, "lastObservedTime": series.last_observed}

    async def _create(self, series: _Series) -> Any:
        body = series.body
        if series.count >= 2:
            body = {**body, "series": self._series_field(series)}
        count = series.count
        created = await self._send_logged(series, "POST", self._path(series), body)
        if created is not None:
            series.written, series.written_at = count, trio.current_time()
        return created

    async def _write_series(self, series: _Series, *, retry: bool = True) -> None:
        count = series.count
        patch = {"series": self._series_field(series)}
        try:
            await self._send_logged(
                series,
                "PATCH",
                self._path(series, name=True),
                patch,
                content_type=MERGE_PATCH,
                raise_not_found=True,
                retry=retry,
            )
        except errors.NotFound:
            # Expired (the apiserver keeps Events an hour) or deleted: create it again.
            await self._create(series)
            return
        series.written_at = trio.current_time()
        series.written = max(series.written, count)

    async def _send_logged(
        self,
        series: _Series,
        method: str,
        path: str,
        body: Any,
        *,
        content_type: str = "application/json",
        raise_not_found: bool = False,
        retry: bool = True,
    ) -> Any:
        """The answer, or None after logging why there is none. Unanswered requests
        are retried (client-go: 12 tries, 10 s apart with 25% jitter)."""
        what = f"event {series.body['metadata']['namespace']}/{series.body['metadata']['name']}"
        tries = 0
        while True:
            tries += 1
            try:
                answer = await self.client.request_json(
                    method, path, body, content_type=content_type
                )
            except errors.NotFound as exc:
                if raise_not_found:
                    raise
                log.warning("server rejected %s: %s (namespace gone? will not retry)", what, exc)
                return None
            except _RETRIED as exc:
                if not retry or tries >= self.max_tries:
                    log.error("could not write %s after %d tries: %s", what, tries, exc)
                    return None
                log.info("could not write %s: %s (will retry)", what, exc)
                delay = self.retry_delay * (1.0 + 0.25 * self.rng.random())
                if isinstance(exc, errors.TooManyRequests) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                await trio.sleep(delay)
                continue
            except errors.ApiError as exc:
                level = logging.DEBUG if isinstance(exc, errors.Conflict) else logging.WARNING
                log.log(level, "server rejected %s: %s (will not retry)", what, exc)
                return None
            return answer if answer is not None else {}
