"""An informer: a store kept in sync by a reflector, with optional Python handlers.

The fast path needs no handler: the reflector applies events in Rust and enqueues each
changed key. Handlers are for controllers that decide on object contents (filter,
map to another key); they receive dicts and run on the reflector's task, one call per
event, so they should be quick and must not block.

    informer = Informer(client, "/api/v1/pods", handlers=EventHandlers(on_add=...))
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        await informer.wait_for_cache_sync()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from trio_controller._native import Store
from trio_controller.cache.reflector import Reflector
from trio_controller.transport.client import Client
from trio_controller.workqueue import WorkQueue

Obj = dict[str, Any]


@dataclass(frozen=True)
class EventHandlers:
    """client-go's ResourceEventHandlerFuncs.

    `on_update` gets `old=None` for objects a (re)list found again: the list replaces
    the cache in one step, so the previous version is not kept. `on_delete` also gets
    tombstones: objects a relist no longer found, with their last known content.
    """

    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj | None, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None


class Informer:
    """A `Store` plus the `Reflector` that fills it; `has_synced` after the first list."""

    def __init__(
        self,
        client: Client,
        path: str,
        *,
        queue: WorkQueue | None = None,
        handlers: EventHandlers | None = None,
        indexes: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        strip_managed_fields: bool = True,
        streaming_list: bool = True,
    ) -> None:
        self.store = Store(strip_managed_fields=strip_managed_fields)
        for name, field_path in (indexes or {}).items():
            self.store.add_index(name, field_path)
        self.reflector = Reflector(
            client,
            path,
            self.store,
            queue,
            params=params,
            handlers=handlers,
            streaming_list=streaming_list,
        )

    @property
    def has_synced(self) -> bool:
        return self.reflector.synced.is_set()

    async def wait_for_cache_sync(self) -> None:
        await self.reflector.synced.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """List and watch until cancelled (`await nursery.start(informer.run)`)."""
        await self.reflector.run(task_status=task_status)
