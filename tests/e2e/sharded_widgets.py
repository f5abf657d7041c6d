"""A sharded Widget controller for the sharding e2e tests, run as a child process:
runtime/sharding.py's `Shard` around a plain `Controller` (not the Manager).

    python tests/e2e/sharded_widgets.py --kubeconfig KC --namespace NS --ledger PATH
        --controller-ring RING --shard-name r1 --shard-lease-namespace NS [--no-drain]

Each reconcile keeps `<widget>-config` (controlled by the Widget), prints
`Reconciled Widget <ns>/<name>` and appends one JSON line to the ledger file: shard,
key, generation, start and end (wall clock). `--no-drain` makes a shard that holds its
Lease but never acknowledges a drain (a shard that dies mid-drain)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any

import trio

from trio_controller import (
    CONFIGMAPS,
    Api,
    Client,
    Conflict,
    Controller,
    ControllerOptions,
    Resource,
    load_config,
)
from trio_controller.cache.factory import SharedInformerFactory
from trio_controller.cache.options import InformerOptions
from trio_controller.observe import log as klog
from trio_controller.runtime.flags import add_shard_flags
from trio_controller.runtime.sharding import Shard

WIDGETS = Resource("example.com", "v1", "widgets", "Widget")


async def run(args: argparse.Namespace) -> None:
    config = load_config(kubeconfig=args.kubeconfig)
    async with Client(config) as client:
        shard = Shard.from_args(client, args, config.namespace)
        assert shard is not None, "--controller-ring is required"
        selector = shard.label_selector
        factory = SharedInformerFactory(client)
        only_ours = InformerOptions(label_selector=selector)
        widgets = factory.informer(WIDGETS, namespace=args.namespace, options=only_ours)
        configmaps = factory.informer(CONFIGMAPS, namespace=args.namespace, options=only_ours)
        ledger = os.open(args.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

        async def reconcile(key: str) -> None:
            widget = widgets.store.get(key)
            if widget is None:
                return
            meta = widget["metadata"]
            start = time.time()
            await trio.sleep(0.05)  # a reconcile takes a while: overlaps would show
            name = f"{meta['name']}-config"
            if configmaps.store.get(f"{meta['namespace']}/{name}") is None:
                ref = {"apiVersion": "example.com/v1", "kind": "Widget", "name": meta["name"],
                       "uid": meta["uid"], "controller": True}  # fmt: skip
                body = {"metadata": {"name": name, "ownerReferences": [ref]}, "data": {}}
                with contextlib.suppress(Conflict):
                    await Api(client, CONFIGMAPS, meta["namespace"]).create(body)
            entry = {"shard": shard.name, "key": key, "generation": meta.get("generation"),
                     "start": start, "end": time.time()}  # fmt: skip
            os.write(ledger, (json.dumps(entry) + "\n").encode())
            print(f"Reconciled Widget {key}", flush=True)

        async def never_drain(key: str) -> None:
            widget = widgets.store.get(key)
            if widget is not None and not shard.draining(widget):
                await reconcile(key)

        wrapped: Any = never_drain if args.no_drain else reconcile
        controller = Controller(
            client,
            WIDGETS,
            shard.sharded(wrapped, widgets.store, WIDGETS) if not args.no_drain else wrapped,
            namespace=args.namespace,
            label_selector=selector,
            factory=factory,
            options=ControllerOptions(workers=4),
        )
        controller.owns(CONFIGMAPS, label_selector=selector)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    async for _ in signals:
                        controller.stop()

                nursery.start_soon(on_signal)
                await shard.run(controller.run)
                nursery.cancel_scope.cancel()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--kubeconfig")
    p.add_argument("--namespace")
    p.add_argument("--ledger", required=True)
    p.add_argument("--no-drain", action="store_true")
    add_shard_flags(p)
    args = p.parse_args()
    klog.setup(0)
    trio.run(run, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
