"""ownerReferences: the controller reference an operator puts on what it creates.

    body = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", ...}}
    set_controller_reference(body, namespace, NAMESPACES)  # body's ownerReferences now
    # [{"apiVersion": "v1", "kind": "Namespace", "name": ..., "uid": ...,
    #   "controller": True, "blockOwnerDeletion": True}]

controller-runtime's `SetControllerReference` semantics: the garbage collector deletes
the child with its owner, `Controller.owns()` maps the child's changes to the owner's
key, and an object has at most one controller: a child whose controller is another
object is refused with `AlreadyOwned`. A reference to the same owner (group, kind, name)
is replaced, not added twice. Objects read from a list carry no apiVersion or kind:
pass the owner's `Resource` then.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from trio_controller.api.resource import Resource
from trio_controller.errors import TrioControllerError

__all__ = ["AlreadyOwned", "controller_reference", "set_controller_reference"]


class AlreadyOwned(TrioControllerError):
    """The object already has a controller reference to another owner (an object has at
    most one controller: controller-runtime's AlreadyOwnedError)."""


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def controller_reference(
    owner: Mapping[str, Any], resource: Resource | None = None
) -> dict[str, Any]:
    """The ownerReference that makes `owner` the controller of another object:
    apiVersion, kind, name, uid, `controller: true`, `blockOwnerDeletion: true`.
    `resource` supplies apiVersion and kind when `owner` has none (objects from a list).
    Raises ValueError when the owner has no name, uid, apiVersion or kind (an object not
    created yet has no uid)."""
    metadata = owner.get("metadata") or {}
    api_version = owner.get("apiVersion") or (resource.api_version if resource else "")
    kind = owner.get("kind") or (resource.kind if resource else "")
    if not api_version or not kind:
        raise ValueError(
            "controller_reference: the owner has no apiVersion/kind (objects from a list "
            "lack them): pass its resource, controller_reference(owner, NAMESPACES)"
        )
    name, uid = metadata.get("name"), metadata.get("uid")
    if not name or not uid:
        raise ValueError(
            f"controller_reference: the owner {kind} {name or '(no name)'} has no "
            "name or uid (read it from the apiserver or a cache first)"
        )
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def set_controller_reference(
    child: MutableMapping[str, Any],
    owner: Mapping[str, Any],
    resource: Resource | None = None,
) -> MutableMapping[str, Any]:
    """Make `owner` the controller of `child` (in place; returns `child`), as
    controller-runtime's SetControllerReference: a reference to the same owner (group,
    kind, name) is replaced, any other ownerReference kept. Raises `AlreadyOwned` when
    another object is `child`'s controller, and ValueError for a namespaced owner of a
    cluster-scoped child or of a child in another namespace (the garbage collector
    would never find that owner)."""
    ref = controller_reference(owner, resource)
    owner_ns = (owner.get("metadata") or {}).get("namespace")
    metadata = child.setdefault("metadata", {})
    child_ns = metadata.get("namespace")
    if owner_ns:
        if not child_ns:
            raise ValueError(
                f"set_controller_reference: a cluster-scoped object cannot have the "
                f"namespaced owner {ref['kind']} {owner_ns}/{ref['name']}"
            )
        if child_ns != owner_ns:
            raise ValueError(
                f"set_controller_reference: {ref['kind']} {owner_ns}/{ref['name']} cannot "
                f"own an object in namespace {child_ns} (owners are in the same namespace)"
            )
    refs: list[dict[str, Any]] = list(metadata.get("ownerReferences") or ())
    same = (_group(ref["apiVersion"]), ref["kind"], ref["name"])

    def is_same(other: Mapping[str, Any]) -> bool:
        group = _group(str(other.get("apiVersion", "")))
        return (group, other.get("kind"), other.get("name")) == same

    for other in refs:
        if other.get("controller") is True and not is_same(other):
            raise AlreadyOwned(
                f"{child.get('kind') or 'object'} {metadata.get('name', '')} is already "
                f"controlled by {other.get('kind')} {other.get('name')}; it cannot also be "
                f"controlled by {ref['kind']} {ref['name']}"
            )
    for i, other in enumerate(refs):
        if is_same(other):
            refs[i] = ref
            break
    else:
        refs.append(ref)
    metadata["ownerReferences"] = refs
    return child
