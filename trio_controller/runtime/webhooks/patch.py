"""The JSON patch (RFC 6902) from the object a mutating webhook got to the one it returned.

    json_patch({"spec": {}}, {"spec": {"replicas": 1}})
    # [{"op": "add", "path": "/spec/replicas", "value": 1}]

Computed by `jsonpatch` (python-json-patch, pinned): paths escape `~` and `/` as RFC 6901
says, lists are diffed element by element. The apiserver applies the patch to the object
it sent, so applying it to `old` gives `new` exactly (tests check this on random pairs).
"""

from __future__ import annotations

from typing import Any

__all__ = ["json_patch"]


def json_patch(old: Any, new: Any) -> list[dict[str, Any]]:
    """The operations turning `old` into `new` (empty when they are equal)."""
    if old == new:
        return []
    import jsonpatch

    ops: list[dict[str, Any]] = jsonpatch.make_patch(old, new).patch
    return ops
