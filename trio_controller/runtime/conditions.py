"""Status conditions with apimachinery's rules (`meta.SetStatusCondition`), and waiting
for one on a watch.

    status = dict(widget.get("status") or {})
    changed = set_condition(status, "Ready", "True", "ConfigMapReady", "ConfigMap made",
                            observed_generation=widget["metadata"]["generation"])
    if changed: ... write status ...
    ready = find_condition(status, "Ready")           # the condition dict, or None
    widget = await wait_for(Api(client, WIDGETS, "ns"), "w1", "Ready", timeout=30)

The rules of `set_condition` (apimachinery's, so kubectl and other controllers read the
conditions as they expect):

- a new type is appended, its `lastTransitionTime` now (unless one is given);
- `lastTransitionTime` moves only when `status` changes; reason, message and
  observedGeneration are updated in place without moving it;
- it returns whether anything changed, so a reconcile writes status only when needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import trio

from trio_controller._native import BodyDecoder
from trio_controller.errors import Gone, NotFound, TrioControllerError

if TYPE_CHECKING:
    from trio_controller.api.verbs import Api

__all__ = [
    "ConditionTimeout",
    "condition_is",
    "find_condition",
    "rfc3339",
    "set_condition",
    "wait_for",
]

_STATUSES = ("True", "False", "Unknown")


class ConditionTimeout(TrioControllerError):
    """`wait_for` did not see its condition within its timeout."""


def rfc3339(when: datetime | None = None) -> str:
    """A `metav1.Time`: RFC 3339 in UTC to the second, `2026-01-02T03:04:05Z`."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(status: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not status:
        return []
    return list(status.get("conditions") or ())


def find_condition(status: Mapping[str, Any] | None, type: str) -> dict[str, Any] | None:
    """The condition of `type` in `status["conditions"]`, or None (`FindStatusCondition`)."""
    for condition in _conditions(status):
        if condition.get("type") == type:
            return condition  # type: ignore[no-any-return]
    return None


def set_condition(
    status: MutableMapping[str, Any],
    type: str,
    status_value: str | bool,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    last_transition_time: str | None = None,
) -> bool:
    """Set the condition `type` in `status["conditions"]` (created if missing) with
    apimachinery's `SetStatusCondition` rules; True if anything changed.

    `status_value` is "True", "False" or "Unknown" (a bool gives "True"/"False");
    `reason` is a CamelCase word; `observed_generation` the `metadata.generation` the
    condition was computed from. `lastTransitionTime` is set on a new condition and moved
    only when the status changes (to `last_transition_time`, default now)."""
    if isinstance(status_value, bool):
        status_value = "True" if status_value else "False"
    if status_value not in _STATUSES:
        raise ValueError(f"a condition's status is True, False or Unknown, not {status_value!r}")
    if not type or not reason:
        raise ValueError("a condition needs a type and a reason")
    conditions = status.get("conditions")
    if conditions is None:
        conditions = status["conditions"] = []
    existing = next((c for c in conditions if c.get("type") == type), None)
    if existing is None:
        new: dict[str, Any] = {
            "type": type,
            "status": status_value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": last_transition_time or rfc3339(),
        }
        if observed_generation is not None:
            new["observedGeneration"] = observed_generation
        conditions.append(new)
        return True
    changed = False
    if existing.get("status") != status_value:
        existing["status"] = status_value
        existing["lastTransitionTime"] = last_transition_time or rfc3339()
        changed = True
    if existing.get("reason") != reason:
        existing["reason"] = reason
        changed = True
    if existing.get("message", "") != message:
        existing["message"] = message
        changed = True
    if observed_generation is not None and existing.get("observedGeneration") != (
        observed_generation
    ):
        existing["observedGeneration"] = observed_generation
        changed = True
    return changed


def condition_is(type: str, status: str = "True") -> Callable[[Mapping[str, Any]], bool]:
    """A test for `wait_for`: the object has condition `type` with `status`."""

    def test(obj: Mapping[str, Any]) -> bool:
        condition = find_condition(obj.get("status"), type)
        return condition is not None and condition.get("status") == status

    return test


async def wait_for(
    api: Api,
    name: str,
    condition: str | Callable[[Mapping[str, Any]], bool],
    timeout: float,  # noqa: ASYNC109 (kubectl wait's shape: the timeout is the call's)
) -> dict[str, Any]:
    """The object `name` once `condition` holds for it (`kubectl wait --for=condition=X`).

    `condition` is a condition type (its status "True"), or a test of the whole object.
    Reads the object once, then watches it from that resourceVersion (re-reading after a
    410 or a closed watch); an object that does not exist yet is waited for too. Raises
    `ConditionTimeout` after `timeout` seconds."""
    test = condition_is(condition) if isinstance(condition, str) else condition
    with trio.move_on_after(timeout):
        while True:
            listed = await api.list(field_selector=f"metadata.name={name}")
            for obj in listed:
                if test(obj):
                    return obj
            found = await _watch_until(api, name, listed.resource_version, test)
            if found is not None:
                return found
    what = condition if isinstance(condition, str) else "the condition"
    raise ConditionTimeout(
        f"timed out after {timeout:g}s waiting for {api.resource.kind} {name}: {what}"
    )


async def _watch_until(
    api: Api, name: str, resource_version: str, test: Callable[[Mapping[str, Any]], bool]
) -> dict[str, Any] | None:
    """Watch `name` from `resource_version`: the first object passing `test`, or None when
    the watch ends (closed, expired) and the caller must read again."""
    params: dict[str, str | int | bool] = {
        "watch": True,
        "fieldSelector": f"metadata.name={name}",
        "resourceVersion": resource_version,
        "allowWatchBookmarks": True,
    }
    path = api.resource.path(namespace=api.namespace)
    try:
        async with api.client.watch(path, params) as body:
            decoder = BodyDecoder(body.chunked, body.content_length)
            pending = b""
            while True:
                data = await body.receive()
                if not data:
                    return None
                pending += decoder.feed(data)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        return None  # 410 Gone and the like: read again
                    if kind in ("ADDED", "MODIFIED") and test(obj):
                        obj.setdefault("apiVersion", api.resource.api_version)
                        obj.setdefault("kind", api.resource.kind)
                        return obj  # type: ignore[no-any-return]
    except (Gone, NotFound):
        return None
