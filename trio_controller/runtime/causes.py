"""Reconcile causes: why a key was handed to a reconcile, readable inside it.

    async def reconcile(key: str) -> None:
        causes = reconcile_causes()          # this reconcile's, or None outside one
        if causes and causes.only("requeue_after"):
            ...                              # a timer, nothing changed

The work queue (Rust) records, per key, every cause it was added for since it was last
handed out: the object itself added/updated/deleted (a live event), "related" (an owned
or watched object changed: the last few of them are kept), "listed" (an initial list,
relist or snapshot), "resync", "requeue_after", "requeue", "retry" (after an error; with
its number) and "manual" (a plain `add`). Memory per key is bounded: a count per cause
and at most four related objects. `Controller.causes(key)` reads them for a key being
reconciled; `reconcile_causes()` reads the current reconcile's from a context variable
the controller sets around each reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_controller.runtime.workqueue import WorkQueue

__all__ = ["ReconcileCauses", "describe_causes", "reconcile_causes"]


class Reconciling:
    """The queue and key of the reconcile running in a context. A batch of plain-function
    reconciles sets one and moves `key` along (cheaper than a context variable per key)."""

    __slots__ = ("key", "queue")

    def __init__(self, queue: WorkQueue, key: str = "") -> None:
        self.queue = queue
        self.key = key


#: The reconcile running in this context (set by the controller around reconciles).
RECONCILING: ContextVar[Reconciling | None] = ContextVar(
    "trio_controller_reconciling", default=None
)


@dataclass(frozen=True)
class ReconcileCauses:
    """Why a key was reconciled: `counts` per cause name (only the causes that
    occurred, see `trio_controller._native.RECONCILE_CAUSES`), `related` the last few
    owned or watched objects `(resource, key)` whose change mapped to it (oldest first),
    `retries` the latest error-retry number (0: none)."""

    counts: Mapping[str, int]
    related: tuple[tuple[str, str], ...] = ()
    retries: int = 0

    def only(self, *causes: str) -> bool:
        """Whether every recorded cause is one of `causes`."""
        return bool(self.counts) and all(c in causes for c in self.counts)

    def __contains__(self, cause: object) -> bool:
        return cause in self.counts

    def __str__(self) -> str:
        return describe_causes(self.counts, self.related, self.retries)


def describe_causes(
    counts: Mapping[str, int],
    related: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    retries: int = 0,
    *,
    top: int | None = None,
) -> str:
    """One line: the causes, most frequent first (at most `top`), e.g.
    `updated x3, related x2 (ConfigMap ns/a, ConfigMap ns/b), retry 4`."""
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    parts = []
    for cause, n in ranked:
        text = cause if n == 1 else f"{cause} x{n}"
        if cause == "related" and related:
            text += " (" + ", ".join(f"{r} {k}" for r, k in related) + ")"
        elif cause == "retry" and retries:
            text = f"retry {retries}"
        parts.append(text)
    return ", ".join(parts) or "none"


def causes_of(queue: WorkQueue, key: str) -> ReconcileCauses | None:
    """The causes of `key` while `queue` has it processing, else None."""
    found = queue.causes(key)
    if found is None:
        return None
    counts, related, retries = found
    return ReconcileCauses(counts, tuple(related), retries)


def reconcile_causes() -> ReconcileCauses | None:
    """The causes of the reconcile running in this task (or thread), None outside one."""
    current = RECONCILING.get()
    if current is None:
        return None
    return causes_of(current.queue, current.key)
