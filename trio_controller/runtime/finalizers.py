"""A finalizer around a reconcile: clean up before the apiserver lets an object go.

    result = await finalizer(client, WIDGETS, widget, "example.com/cleanup",
                             apply=reconcile_widget, cleanup=delete_bucket)

What it does, by the object's state (kube-rs `finalizer()`, kopf's semantics):

    not deleting, lacks our finalizer   add it, then apply(object as patched)
    not deleting, has it                apply(object)
    deleting, has it                    cleanup(object), then remove only our finalizer
    deleting, lacks it                  nothing (None): not ours to hold up

Writes never clobber a concurrent writer. Adding is a merge patch of the whole
`metadata.finalizers` list carrying the resourceVersion read, so a write in between
is a 409; removing is a JSON patch `test` of our name at its index, then `remove` at
that index, so it fails (422) if the list moved, and other writes do not disturb it.
(The apiserver answers a failed `test` with a bare 422 Invalid, hence the merge patch
for adding: a 409 there means exactly "changed since read".)

Conflicts are retried here: the object is read again and the table above applied to
what is there now, up to `conflict_retries` times; then the error (Conflict, or the
422) is raised for the controller to requeue. apply and cleanup run at most once per
call, never after a failed write. Cleanup must be idempotent: if removing the finalizer
still fails after it ran, the next reconcile runs it again (as in kube-rs and kopf).
An object gone meanwhile (404) ends the call: None, or what cleanup returned.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from trio_controller import errors
from trio_controller.api.resource import Resource
from trio_controller.api.verbs import Api
from trio_controller.transport.client import Client

__all__ = ["finalizer", "is_deleting"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Object = dict[str, Any]
Handler = Callable[[Object], Awaitable[T]]

# A qualified name, as the apiserver validates finalizers: an optional DNS subdomain
# prefix and "/", then 1-63 characters, alphanumeric at both ends.
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_QUALIFIED = re.compile(rf"(?:(?P<prefix>{_PREFIX})/)?(?P<name>{_NAME})")


def _check_name(name: str) -> None:
    match = _QUALIFIED.fullmatch(name)
    if match is None or len(match["name"]) > 63 or len(match["prefix"] or "") > 253:
        raise ValueError(f"{name!r} is not a valid finalizer name (like example.com/cleanup)")


def is_deleting(obj: Mapping[str, Any]) -> bool:
    """True once the apiserver has set `metadata.deletionTimestamp`."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _finalizers(obj: Mapping[str, Any]) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


async def finalizer(
    client: Client,
    resource: Resource,
    obj: Mapping[str, Any],
    name: str,
    apply: Handler[T],
    cleanup: Handler[T],
    *,
    conflict_retries: int = 3,
) -> T | None:
    """Run `apply` or `cleanup` on `obj` (a `resource` object as a dict) with the
    finalizer `name` held while the object lives; see the module's table. Returns what
    apply or cleanup returned, None when neither ran. Raises what they raise, and the
    write's `ApiError` when conflicts outlast `conflict_retries` re-reads."""
    _check_name(name)
    metadata = obj.get("metadata") or {}
    object_name = metadata.get("name")
    if not object_name:
        raise ValueError(f"the {resource.kind} has no metadata.name")
    namespace = metadata.get("namespace") if resource.namespaced else None
    api = Api(client, resource, namespace)
    what = f"{resource.kind} {namespace + '/' if namespace else ''}{object_name}"
    current: Object = dict(obj)
    if not metadata.get("resourceVersion"):  # built by hand: the guard needs the stored one
        try:
            current = await api.get(object_name)
        except errors.NotFound:
            return None
    conflicts = 0
    while True:
        finalizers = _finalizers(current)
        if is_deleting(current):
            if name not in finalizers:
                return None
            result = await cleanup(current)
            await _remove(api, current, name, what, conflict_retries - conflicts)
            return result
        if name in finalizers:
            return await apply(current)
        rv = current["metadata"]["resourceVersion"]
        patch = {"metadata": {"resourceVersion": rv, "finalizers": [*finalizers, name]}}
        try:
            current = await api.patch(object_name, patch, type="merge")
            log.debug("added finalizer %s to %s", name, what)
        except errors.NotFound:
            return None
        except errors.Conflict as exc:
            if conflicts >= conflict_retries:
                raise
            conflicts += 1
            log.debug("adding finalizer %s to %s: %s; reading it again", name, what, exc)
            try:
                current = await api.get(object_name)
            except errors.NotFound:
                return None


async def _remove(api: Api, current: Object, name: str, what: str, retries: int) -> None:
    """Remove `name` from the finalizers, guarded by a `test` at its index."""
    object_name = current["metadata"]["name"]
    while True:
        finalizers = _finalizers(current)
        if name not in finalizers:
            return
        index = finalizers.index(name)
        patch = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": name},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            await api.patch(object_name, patch, type="json")
            log.debug("removed finalizer %s from %s", name, what)
            return
        except errors.NotFound:
            return
        except errors.ApiError as exc:
            # 409, or 422: the apiserver's answer to a failed `test` (the list moved).
            if exc.status not in (409, 422) or retries <= 0:
                raise
            retries -= 1
            log.debug("removing finalizer %s from %s: %s; reading it again", name, what, exc)
            try:
                current = await api.get(object_name)
            except errors.NotFound:
                return
