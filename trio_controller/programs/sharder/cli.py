"""`trio-controller-sharder`: assigns the objects of ControllerRings to their shards.

    trio-controller-sharder [--kubeconfig PATH] [--context NAME] [--master URL]
                            [--namespace NS] [--sync-period SECONDS] [--settle SECONDS]
                            [--concurrent-moves N] [--[no-]leader-elect] [--leader-elect-...]
                            [--metrics-bind-address HOST:PORT]
                            [--health-probe-bind-address HOST:PORT]
                            [--webhook-bind-address HOST:PORT] [--webhook-cert-dir DIR]
                            [--logging-format text|json] [-v N]

A `Manager` program (runtime/manager.py): the standard flags, logging, probes, metrics,
the `error: ...` line and the exit codes are the Manager's; leader election is on by
default (`--no-leader-elect` turns it off), its Lease `trio-controller-sharder` in
`--namespace`. On start it installs the `ControllerRing` CRD (sharding.timebertt.dev/
v1alpha1) when the cluster lacks it; the leader watches the shard Leases in
`--namespace` and shards every ControllerRing (sharder.py). With
`--webhook-bind-address` every replica serves the assignment webhook (webhook.py) on
`/webhooks/sharder/controllerring/<ring>`; only the leader answers with a shard.
SIGINT/SIGTERM stops it and releases its Lease.
"""

from __future__ import annotations

import argparse
import sys

from trio_controller import __version__
from trio_controller.programs.sharder.crd import ensure_crd
from trio_controller.programs.sharder.metrics import SharderCollector
from trio_controller.programs.sharder.sharder import (
    CONCURRENT_MOVES,
    SETTLE,
    SYNC_PERIOD,
    Sharder,
)
from trio_controller.programs.sharder.webhook import SharderWebhook
from trio_controller.runtime.flags import add_flags, non_negative_float, positive_int
from trio_controller.runtime.manager import Manager
from trio_controller.runtime.sharding import IN_CLUSTER_NAMESPACE

PROG = "trio-controller-sharder"
NAMESPACE_HELP = (
    "where the shard Leases and the sharder's own Lease live (default: the pod's namespace "
    "in a cluster, else the kubeconfig context's, else default)"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Assign the objects of every ControllerRing to its shards "
        "(kubernetes-controller-sharding's protocol).",
    )
    add_flags(
        p,
        leader_elect_resource_name=PROG,
        leader_elect=True,
        shard_flags=False,
        version=f"{PROG} {__version__}",
    )
    for action in p._actions:
        if action.dest == "namespace":
            action.help = NAMESPACE_HELP
        elif action.dest in ("all_namespaces", "workers"):
            action.help = argparse.SUPPRESS  # the sharder has one Lease namespace, no workers
    p.add_argument(
        "--sync-period",
        type=_positive_float,
        default=SYNC_PERIOD,
        metavar="SECONDS",
        help=f"resync every ring's assignments this often (default {SYNC_PERIOD:g})",
    )
    p.add_argument(
        "--concurrent-moves",
        type=positive_int,
        default=CONCURRENT_MOVES,
        metavar="N",
        help=f"label writes in flight during a resync (default {CONCURRENT_MOVES})",
    )
    p.add_argument(
        "--settle",
        type=non_negative_float,
        default=SETTLE,
        metavar="SECONDS",
        help="after a shard joins a ring, wait this long for shards joining with it before "
        f"assigning or moving objects (default {SETTLE:g}; 0: at once)",
    )
    return p


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return value


def _pod_namespace() -> str | None:
    try:
        with open(IN_CLUSTER_NAMESPACE) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _namespace(args: argparse.Namespace, config_namespace: str | None) -> str:
    """`--namespace`, else the pod's namespace in a cluster, else the kubeconfig
    context's (`config_namespace`), else `default`."""
    return str(args.namespace or _pod_namespace() or config_namespace or "default")


async def _setup(manager: Manager) -> None:
    """Install the CRD, then run the sharder while leading; metrics, probes, webhook."""
    args = manager.args
    assert args is not None
    await ensure_crd(manager.client)
    sharder = Sharder(
        manager.client,
        namespace=_namespace(args, manager.namespace),
        sync_period=args.sync_period,
        concurrent_moves=args.concurrent_moves,
        settle=args.settle,
    )
    manager.add_runnable(sharder.run, needs_leader=True)
    for controller in (sharder.ring_controller, sharder.lease_controller):
        manager.add_observed(controller, needs_leader=True)
    manager.add_collector(SharderCollector(sharder))
    if manager.webhooks is not None:

        def counted(ring: str, group: str, resource: str) -> None:
            # controller_sharding_assignments_total counts the webhook's, as the original's
            if (state := sharder.rings.get(ring)) is not None:
                state.mover.counts["assignments", group, resource] += 1

        webhook = SharderWebhook(sharder, lambda: manager.is_leader, counted)
        webhook.install(manager.webhooks, manager.factory)


def main(argv: list[str] | None = None) -> int:
    """The `trio-controller-sharder` command: exit 0 on a signal, 1 with one error line."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.all_namespaces:
        parser.error("-A/--all-namespaces: the sharder's Leases live in one namespace (-n)")
    # The Manager's namespace (and so its Lease's): -n, else the pod's, else the context's.
    args.namespace = args.namespace or _pod_namespace()
    return Manager.main(_setup, args=args)


if __name__ == "__main__":
    sys.exit(main())
