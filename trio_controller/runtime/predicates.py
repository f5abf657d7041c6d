"""Predicates: which updates of a watched resource enter a controller's queue.

    from trio_controller import Controller, generation_changed
    Controller(client, WIDGETS, reconcile, predicates=[generation_changed])
    controller.owns(CONFIGMAPS, predicates=[labels_changed])
    controller.watches(SECRETS, mapper, predicates=[lambda old, new: ...])

controller-runtime's semantics (GenerationChangedPredicate and friends): an update (a
MODIFIED event; an object a relist finds again) enters the queue only if every given
predicate holds for `(old, new)`; adds and deletes always do. A status write does not
change `metadata.generation`, so `generation_changed` keeps an operator's own status
writes (and label or annotation changes) from re-triggering its reconcile.

The four built-in predicates run in Rust on the apply path, comparing what the cache
already holds per object (no parse, no Python per event). Any other callable
`(old: dict | None, new: dict | None) -> bool` works too: it is called with both
versions parsed, only for updates the built-in ones let through; one that raises lets
the update through (logged once per error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trio_controller._native import (
    PREDICATE_ANNOTATIONS,
    PREDICATE_GENERATION,
    PREDICATE_LABELS,
    PREDICATE_RESOURCE_VERSION,
)

__all__ = [
    "Predicate",
    "annotations_changed",
    "generation_changed",
    "labels_changed",
    "resource_version_changed",
]


@dataclass(frozen=True)
class Predicate:
    """A built-in predicate: an update passes if `metadata.<field>` changed.

    `bit` is what the informer core evaluates in Rust; calling the predicate with two
    dicts gives the same answer in Python."""

    name: str
    field: str
    bit: int

    def __call__(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
        if old is None or new is None:
            return True
        default: Any = 0 if self.field == "generation" else None
        before = (old.get("metadata") or {}).get(self.field) or default
        after = (new.get("metadata") or {}).get(self.field) or default
        return bool(before != after)

    def __repr__(self) -> str:
        return self.name


generation_changed = Predicate("generation_changed", "generation", PREDICATE_GENERATION)
"""`metadata.generation` changed: a spec change, not a status, label or annotation write."""

labels_changed = Predicate("labels_changed", "labels", PREDICATE_LABELS)
"""`metadata.labels` changed."""

annotations_changed = Predicate("annotations_changed", "annotations", PREDICATE_ANNOTATIONS)
"""`metadata.annotations` changed."""

resource_version_changed = Predicate(
    "resource_version_changed", "resourceVersion", PREDICATE_RESOURCE_VERSION
)
"""`metadata.resourceVersion` changed (drops an object a relist finds unchanged)."""
