"""Key mappers: from a secondary object (a dict) to the keys of the primaries to reconcile.

    controller_owner("example.com/v1", "Widget", namespaced=True)   # controller-runtime's
        # EnqueueRequestForOwner(OnlyControllerOwner): a ConfigMap with the ownerReference
        # {apiVersion: example.com/v1, kind: Widget, name: w, controller: true} in ns "a"
        # maps to "a/w"

Group and kind are compared, not the version (as controller-runtime does, and as the
Rust owner mapping does, with the same `group_of`), so references written under an
older version still map.
"""

from __future__ import annotations

from typing import Any

from trio_controller._native import group_of
from trio_controller.cache.sink import Mapper

__all__ = ["controller_owner", "group_of"]


def controller_owner(api_version: str, kind: str, namespaced: bool = True) -> Mapper:
    """A mapper to the key of an object's controller owner of this group and kind."""
    group = group_of(api_version)

    def owner(obj: dict[str, Any]) -> list[str]:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if (
                isinstance(ref, dict)
                and ref.get("controller") is True
                and ref.get("kind") == kind
                and group_of(str(ref.get("apiVersion", ""))) == group
                and ref.get("name")
            ):
                ns = meta.get("namespace")
                return [f"{ns}/{ref['name']}" if namespaced and ns else str(ref["name"])]
        return []

    return owner
