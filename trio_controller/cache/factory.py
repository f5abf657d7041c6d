"""Shared informers: one reflector, one store and one watch per (resource, namespace,
selectors, metadata-only), whoever asks for it (client-go's SharedInformerFactory,
controller-runtime's cache).

    factory = SharedInformerFactory(client, InformerOptions(compress=True))  # defaults
    pods = factory.informer(PODS, namespace="default")     # the same object...
    again = factory.informer(PODS, namespace="default")    # ...every time
    pods.add_queue(queue_a); again.add_queue(queue_b)      # each controller its own queue
    async with trio.open_nursery() as nursery:
        await nursery.start(factory.run)                   # runs every informer, also later ones
        await factory.wait_for_cache_sync()

Store settings (indexes, compression, sync mode) are the first asker's; an index asked
for later is added to the shared store (objects already held are indexed at once).
Options travel as one `InformerOptions` value: the factory's defaults, or the asker's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from trio_controller.api.resource import Resource
from trio_controller.cache.informer import Informer, InformerKey
from trio_controller.cache.options import InformerOptions
from trio_controller.transport.client import Client

__all__ = ["SharedInformerFactory"]


class SharedInformerFactory:
    """Hands out one `Informer` per `InformerKey` and runs them all."""

    def __init__(
        self,
        client: Client,
        defaults: InformerOptions = InformerOptions(),  # noqa: B008 (frozen: shared safely)
    ) -> None:
        self.client = client
        #: The options of informers asked for without their own.
        self.defaults = defaults
        self._informers: dict[InformerKey, Informer] = {}
        self._nursery: trio.Nursery | None = None
        self._run_one: Callable[..., Awaitable[None]] = Informer.run

    def informer(
        self,
        resource: Resource | str,
        *,
        namespace: str | None = None,
        options: InformerOptions | None = None,
    ) -> Informer:
        """The shared informer of `resource` in `namespace` with `options` (default: the
        factory's), created on first request (and started at once if `run` is running).
        Informers with the same path, selectors and `metadata_only` are one."""
        options = options if options is not None else self.defaults
        path = resource.path(namespace=namespace) if isinstance(resource, Resource) else resource
        key = InformerKey(
            path,
            options.label_selector or None,
            options.field_selector or None,
            options.metadata_only,
        )
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, resource, options, namespace=namespace)
            self._informers[key] = informer
            if self._nursery is not None:
                self._nursery.start_soon(self._run_one, informer)
        else:
            for name, field_path in options.indexes:
                informer.add_index(name, field_path)
        return informer

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    @property
    def has_synced(self) -> bool:
        return all(i.has_synced for i in self._informers.values())

    async def wait_for_cache_sync(self) -> None:
        """Until every informer asked for so far has synced."""
        for informer in list(self._informers.values()):
            await informer.wait_for_cache_sync()

    @property
    def running(self) -> bool:
        """`run` is running: informers asked for now start at once."""
        return self._nursery is not None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every informer (those asked for later too) until cancelled. The first
        informer that fails stops them all; its error is raised as itself."""
        failure: list[BaseException] = []
        async with trio.open_nursery() as nursery:

            async def run_one(
                informer: Informer, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
            ) -> None:
                try:
                    await informer.run(task_status=task_status)
                except Exception as exc:
                    failure.append(exc)
                    nursery.cancel_scope.cancel()

            self._run_one = run_one
            for informer in list(self._informers.values()):
                if not informer.running:
                    await nursery.start(run_one, informer)
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None
        if failure:
            raise failure[0]
