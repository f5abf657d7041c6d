"""client-go's workqueue example, built on the generic `Controller` over `PODS`.

It prints `Sync/Add/Update for Pod <name>` for a key whose pod is cached and
`Pod <namespace>/<name> does not exist anymore` for one that is not, one write per
batch of keys. The CLI (cli.py) runs it.
"""

from __future__ import annotations

import sys
from typing import TextIO

from trio_controller._native import Store, StoreReader
from trio_controller.api.resource import PODS
from trio_controller.cache.factory import SharedInformerFactory
from trio_controller.cache.options import InformerOptions
from trio_controller.runtime.controller import CACHE_SYNC_TIMEOUT, Controller, ControllerOptions
from trio_controller.transport.client import Client

__all__ = ["PodSyncPrinter", "pod_controller"]


class PodSyncPrinter:
    """The example's handler: one line per key, written out once per batch of keys.

    `Controller` calls `flush()` after every batch a worker took (a batch is whatever
    was ready, so no line waits for more input) and after every key of an async
    reconcile: one `write` per batch instead of one per line.
    """

    def __init__(self, store: Store | StoreReader, out: TextIO) -> None:
        self._store = store
        self._out = out
        self._lines: list[str] = []

    def __call__(self, key: str) -> None:
        name = self._store.name(key)
        if name is None:
            self._lines.append(f"Pod {key} does not exist anymore\n")
        else:
            self._lines.append(f"Sync/Add/Update for Pod {name}\n")

    def flush(self) -> None:
        if self._lines:
            text = "".join(self._lines)
            self._lines.clear()
            self._out.write(text)
            self._out.flush()


def pod_controller(
    client: Client,
    *,
    namespace: str | None,
    workers: int = 1,
    resync: float | None = None,
    out: TextIO | None = None,
    strip_managed_fields: bool = True,
    compress: bool = True,
    streaming_list: bool = True,
    cache_sync_timeout: float | None = CACHE_SYNC_TIMEOUT,
    factory: SharedInformerFactory | None = None,
) -> Controller:
    """Watch pods in `namespace` (None: all namespaces) and print a line per key.

    With `factory` (a Manager's), the informer settings are the factory's."""
    if factory is None:
        factory = SharedInformerFactory(
            client,
            InformerOptions(
                strip_managed_fields=strip_managed_fields,
                compress=compress,
                streaming_list=streaming_list,
            ),
        )
    store = factory.informer(PODS, namespace=namespace).store
    printer = PodSyncPrinter(store, out if out is not None else sys.stdout)
    return Controller(
        client,
        PODS,
        printer,
        namespace=namespace,
        factory=factory,
        options=ControllerOptions(
            workers=workers,
            resync=resync,
            flush=printer.flush,
            cache_sync_timeout=cache_sync_timeout,
        ),
    )
