"""Peer: trio_controller in-process (the CLI's code path), with knobs the CLI lacks.

    python bench/peers/ours.py KUBECONFIG [--workers N] [--no-strip] [--streaming-list]
                               [--compress]

`pod_controller` as `trio-controller` builds it, printing to stdout (flushed per line),
with the knobs explicit: list+watch unless `--streaming-list`; `--no-strip` keeps
managedFields in the cache (for the memory figure).
"""

from __future__ import annotations

import argparse
import sys

import trio

from trio_controller import config as kubeconfig
from trio_controller.observe import log as klog
from trio_controller.programs.pods.printer import pod_controller
from trio_controller.transport.client import Client


async def main(args: argparse.Namespace) -> None:
    config = kubeconfig.load_config(kubeconfig=args.kubeconfig)
    async with Client(config) as client:
        controller = pod_controller(
            client,
            namespace="default",
            workers=args.workers,
            out=sys.stdout,
            strip_managed_fields=not args.no_strip,
            streaming_list=args.streaming_list,
            **({"compress": True} if args.compress else {}),
        )
        await controller.run()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("kubeconfig")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--no-strip", action="store_true")
    p.add_argument("--streaming-list", action="store_true", help="sync with a WatchList")
    p.add_argument("--compress", action="store_true", help="LZ4 in the store (--compress-cache)")
    args = p.parse_args()
    klog.setup(0)
    trio.run(main, args)
