"""`--cache-snapshot`: the store saved on exit and loaded on start, so deletes made
while the controller was down are reconciled by the first list."""

from __future__ import annotations

import logging
from pathlib import Path

from trio_controller._native import Store
from trio_controller.errors import TrioControllerError

__all__ = ["load_snapshot", "save_snapshot"]

log = logging.getLogger(__name__)


def load_snapshot(store: Store, path: Path) -> int:
    """Fill `store` from a cache snapshot; the first list then reconciles it.

    A missing file is an empty cache. An unreadable or corrupt one is logged and
    ignored: the list rebuilds the cache, only deletes made while the controller was
    down go unreported.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("Ignoring the cache snapshot %s: %s", path, exc.strerror or exc)
        return 0
    try:
        return store.restore(data)
    except ValueError as exc:
        log.warning("Ignoring the cache snapshot %s: %s", path, exc)
        return 0


def save_snapshot(store: Store, path: Path) -> None:
    """Write the cache atomically (a temporary file renamed over `path`)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(store.snapshot())
        tmp.replace(path)
    except OSError as exc:
        raise TrioControllerError(
            f"cannot write the cache snapshot {path}: {exc.strerror or exc}"
        ) from None
