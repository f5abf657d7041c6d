"""The apiserver's state for one resource (pods), as the simulation's server sees it.

    create / update / delete          one resourceVersion counter for every write; a delete
                                      is MODIFIED (deletionTimestamp) then DELETED
    list_page(limit, continue)        a consistent snapshot at the first page's rv; the
                                      continue token names it, and expires (410) once
                                      compaction passed it
    events_after(rv)                  the history after rv, or `TooOld` once compacted
    compact(rv)                       drops history up to rv, as etcd does

Every body is the JSON the apiserver writes (items of a list without kind/apiVersion,
watch objects with them, bookmarks as the watch cache writes them, Status failures with
the apiserver's reasons and messages).
"""

from __future__ import annotations

import base64
import bisect
from dataclasses import dataclass
from typing import Any

import orjson
import trio

FIRST_RV = 100
NAMESPACE = "default"


class TooOld(Exception):
    """A watch or continue token from before the compacted resourceVersion."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status["message"])
        self.status = status


def status_failure(code: int, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    """A `Status` as the apiserver writes it (field order included)."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    status.update(extra)
    status["code"] = code
    return status


def too_old(rv: int, compacted: int) -> dict[str, Any]:
    return status_failure(410, "Expired", f"too old resource version: {rv} ({compacted})")


def continue_expired() -> dict[str, Any]:
    return status_failure(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. "
        "You can start a new list without the continue parameter, or use the continue "
        "token in this response to retrieve the remainder of the results. Continuing with "
        "the provided token results in an inconsistent list - objects that were created, "
        "modified, or deleted between the time the first chunk was returned and now may "
        "show up in the list.",
    )


def too_many_requests(seconds: int) -> dict[str, Any]:
    return status_failure(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        details={"retryAfterSeconds": seconds},
    )


def internal_error(detail: str) -> dict[str, Any]:
    return status_failure(
        500,
        "InternalError",
        f"Internal error occurred: {detail}",
        details={"causes": [{"message": detail}]},
    )


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    key: str
    obj: dict[str, Any]


def bookmark(rv: int, initial_events_end: bool = False) -> dict[str, Any]:
    """A BOOKMARK's object, as the watch cache writes it."""
    meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
    if initial_events_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": meta,
        "spec": {"containers": None},
        "status": {},
    }


def watch_line(type_: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": type_, "object": obj}) + b"\n"


class Model:
    """Pods in one namespace, their history and the compaction point."""

    def __init__(self) -> None:
        self.rv = FIRST_RV  # the last resourceVersion handed out
        self.objects: dict[str, dict[str, Any]] = {}  # key -> the object now (no kind)
        self.history: list[Event] = []  # rv order
        self._history_rvs: list[int] = []
        # key -> [(rv, object or None once deleted)], for lists at an older snapshot
        self.versions: dict[str, list[tuple[int, dict[str, Any] | None]]] = {}
        self.compacted = FIRST_RV  # history at or before this rv is gone
        self.ever: dict[str, None] = {}  # every key that ever existed, in order
        self._uids = 0
        self.changed = trio.Event()

    # -- writes ------------------------------------------------------------------------

    def _record(self, type_: str, key: str, obj: dict[str, Any] | None, event_obj: dict) -> None:
        self.versions.setdefault(key, []).append((self.rv, obj))
        full = {"kind": "Pod", "apiVersion": "v1", **event_obj}
        self.history.append(Event(self.rv, type_, key, full))
        self._history_rvs.append(self.rv)
        self.changed.set()
        self.changed = trio.Event()

    def create(self, name: str) -> str:
        key = f"{NAMESPACE}/{name}"
        assert key not in self.objects
        self.rv += 1
        self._uids += 1
        obj = {
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": f"00000000-0000-0000-0000-{self._uids:012d}",
                "resourceVersion": str(self.rv),
                "generation": 1,
                "creationTimestamp": "2026-12-01T00:00:00Z",
                "labels": {"app": "sim"},
            },
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Pending"},
        }
        self.objects[key] = obj
        self.ever[key] = None
        self._record("ADDED", key, obj, obj)
        return key

    def _modify(self, key: str, change: dict[str, Any]) -> None:
        old = self.objects[key]
        self.rv += 1
        meta = {**old["metadata"], **change, "resourceVersion": str(self.rv)}
        obj = {**old, "metadata": meta}
        self.objects[key] = obj
        self._record("MODIFIED", key, obj, obj)

    def update(self, key: str) -> None:
        generation = self.objects[key]["metadata"]["generation"] + 1
        self._modify(
            key, {"generation": generation, "labels": {"app": "sim", "g": str(generation)}}
        )

    def mark_deleted(self, key: str) -> None:
        """The first half of a delete: MODIFIED with deletionTimestamp."""
        self._modify(
            key,
            {"deletionTimestamp": "2026-12-01T00:00:01Z", "deletionGracePeriodSeconds": 0},
        )

    def finish_delete(self, key: str) -> None:
        """The second half: DELETED, with the object at the delete's own rv."""
        old = self.objects.pop(key)
        self.rv += 1
        obj = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self.rv)}}
        self._record("DELETED", key, None, obj)

    def deleting(self, key: str) -> bool:
        return "deletionTimestamp" in self.objects[key]["metadata"]

    def compact(self, rv: int) -> None:
        """etcd compaction: history at or before `rv` is gone (watches and continue
        tokens from before it get 410)."""
        if rv <= self.compacted:
            return
        self.compacted = min(rv, self.rv)
        cut = bisect.bisect_right(self._history_rvs, self.compacted)
        del self.history[:cut]
        del self._history_rvs[:cut]

    # -- reads -------------------------------------------------------------------------

    def state_at(self, rv: int) -> list[tuple[str, dict[str, Any]]]:
        """Every object as of `rv`, in key order."""
        out = []
        for key in sorted(self.versions):
            versions = self.versions[key]
            i = bisect.bisect_right(versions, rv, key=lambda v: v[0])
            if i and (obj := versions[i - 1][1]) is not None:
                out.append((key, obj))
        return out

    def list_page(self, limit: int | None, token: str | None) -> bytes:
        """One page of a list (raises `TooOld` for a continue token that expired)."""
        if token:
            data = orjson.loads(base64.b64decode(token))
            snapshot, start = int(data["rv"]), data["start"]
            if snapshot < self.compacted:
                raise TooOld(continue_expired())
        else:
            snapshot, start = self.rv, ""
        items = [(k, o) for k, o in self.state_at(snapshot) if k >= start]
        meta: dict[str, Any] = {"resourceVersion": str(snapshot)}
        if limit is not None and len(items) > limit:
            rest = items[limit:]
            items = items[:limit]
            token = {"v": "meta.k8s.io/v1", "rv": snapshot, "start": rest[0][0]}
            meta["continue"] = base64.b64encode(orjson.dumps(token)).decode()
            meta["remainingItemCount"] = len(rest)
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": meta}
        body["items"] = [o for _, o in items]
        return orjson.dumps(body)

    def events_after(self, rv: int) -> list[Event]:
        """The history after `rv` (raises `TooOld` once it was compacted)."""
        if rv < self.compacted:
            raise TooOld(too_old(rv, self.compacted))
        return self.history[bisect.bisect_right(self._history_rvs, rv) :]

    def initial_events(self) -> list[Event]:
        """ADDED for every object now: a watch without resourceVersion, or a streaming
        list's initial events."""
        return [
            Event(
                int(o["metadata"]["resourceVersion"]),
                "ADDED",
                k,
                {"kind": "Pod", "apiVersion": "v1", **o},
            )
            for k, o in sorted(self.objects.items())
        ]
