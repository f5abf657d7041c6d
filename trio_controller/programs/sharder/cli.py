"""`trio-controller-sharder`: assigns the objects of ControllerRings to their shards.

    trio-controller-sharder [--kubeconfig PATH] [--context NAME] [--master URL]
                            [--namespace NS] [--sync-period SECONDS]
                            [--[no-]leader-elect] [--leader-elect-... ]
                            [--metrics-bind-address HOST:PORT]
                            [--health-probe-bind-address HOST:PORT]
                            [--logging-format text|json] [-v N]

On start it installs the `ControllerRing` CRD (sharding.timebertt.dev/v1alpha1) when the
cluster lacks it. Its replicas elect a leader (a Lease `trio-controller-sharder` in
`--namespace`, the pod program's leader election flags); the leader watches the shard
Leases in `--namespace` and shards every ControllerRing (sharder.py). SIGINT/SIGTERM
stops it and releases its Lease; a broken set-up prints one `error: ...` line, exit 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import trio

from trio_controller import __version__, errors
from trio_controller import config as kubeconfig
from trio_controller.observe import log as klog
from trio_controller.observe.health import Health
from trio_controller.observe.metrics import CONTENT_TYPE_LATEST, Metrics
from trio_controller.observe.serving import (
    Response,
    Route,
    format_address,
    serve_http,
)
from trio_controller.programs.sharder.crd import ensure_crd
from trio_controller.programs.sharder.metrics import SharderCollector
from trio_controller.programs.sharder.sharder import (
    CONCURRENT_MOVES,
    SETTLE,
    SYNC_PERIOD,
    Sharder,
)
from trio_controller.runtime.flags import bind_address, non_negative_float, positive_int
from trio_controller.runtime.leaderelection import LeaderElector, lease_identity_from_env
from trio_controller.runtime.sharding import IN_CLUSTER_NAMESPACE
from trio_controller.transport.client import Client

log = logging.getLogger("trio_controller.programs.sharder.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trio-controller-sharder",
        description="Assign the objects of every ControllerRing to its shards "
        "(kubernetes-controller-sharding's protocol).",
    )
    p.add_argument("--kubeconfig", metavar="PATH", help="path to a kubeconfig file (must exist)")
    p.add_argument("--context", metavar="NAME", help="the kubeconfig context to use")
    p.add_argument("--master", metavar="URL", help="the API server URL (overrides the kubeconfig)")
    p.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="where the shard Leases and the sharder's own Lease live (default: the pod's "
        "namespace in a cluster, else the kubeconfig context's, else default)",
    )
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
    le = p.add_argument_group("leader election (kube-controller-manager's flags)")
    le.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run only while holding a coordination.k8s.io Lease (one active replica; default: on)",
    )
    le.add_argument(
        "--leader-elect-resource-name", default="trio-controller-sharder", metavar="NAME"
    )
    le.add_argument(
        "--leader-elect-resource-namespace",
        metavar="NS",
        help="where the Lease lives (default: --namespace)",
    )
    le.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="S")
    le.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="S")
    le.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="S")
    ob = p.add_argument_group("observability (controller-runtime's flags)")
    ob.add_argument(
        "--metrics-bind-address",
        type=bind_address,
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (default 0: off)",
    )
    ob.add_argument(
        "--health-probe-bind-address",
        type=bind_address,
        default=None,
        metavar="HOST:PORT",
        help="serve /healthz and /readyz on HOST:PORT (default 0: off)",
    )
    ob.add_argument(
        "--logging-format",
        choices=("text", "json"),
        default="text",
        help="text: klog's lines (default); json: one JSON object per line",
    )
    ob.add_argument("-v", "--v", dest="verbosity", type=int, default=0, metavar="N")
    p.add_argument("--version", action="version", version=f"trio-controller-sharder {__version__}")
    return p


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return value


def _namespace(args: argparse.Namespace, config_namespace: str | None) -> str:
    if args.namespace:
        return str(args.namespace)
    try:
        with open(IN_CLUSTER_NAMESPACE) as f:
            found = f.read().strip()
    except OSError:
        found = ""
    return found or config_namespace or "default"


async def _run(args: argparse.Namespace) -> None:
    config = kubeconfig.load_config(
        kubeconfig=args.kubeconfig, context=args.context, master=args.master
    )
    namespace = _namespace(args, config.namespace)
    async with Client(config) as client:
        klog.log_requests(client)
        elector = _elector(args, client, namespace) if args.leader_elect else None
        await ensure_crd(client)
        sharder = Sharder(
            client,
            namespace=namespace,
            sync_period=args.sync_period,
            concurrent_moves=args.concurrent_moves,
            settle=args.settle,
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await _start_servers(nursery, args, client, sharder, elector)

                async def on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()  # the elector releases the Lease

                nursery.start_soon(on_signal)

                async def lead() -> None:
                    await sharder.run()

                if elector is None:
                    await lead()
                else:
                    await elector.run(lead)
                nursery.cancel_scope.cancel()


async def _start_servers(
    nursery: trio.Nursery,
    args: argparse.Namespace,
    client: Client,
    sharder: Sharder,
    elector: LeaderElector | None,
) -> None:
    servers: dict[tuple[str | None, int], dict[str, Route]] = {}
    if args.metrics_bind_address is not None:
        metrics = Metrics()
        for controller in sharder.controllers:
            metrics.add_controller(controller)
        metrics.add_client(client)
        metrics.registry.register(SharderCollector(sharder))

        def scrape(query: object) -> Response:
            return Response(200, metrics.exposition(), CONTENT_TYPE_LATEST)

        servers.setdefault(args.metrics_bind_address, {})["/metrics"] = scrape
    if args.health_probe_bind_address is not None:
        health = Health()
        standby = (lambda: not elector.is_leader) if elector is not None else (lambda: False)
        health.add_controller(sharder.ring_controller, standby=standby, suffix="-controllerring")
        health.add_controller(sharder.lease_controller, standby=standby, suffix="-shardlease")
        servers.setdefault(args.health_probe_bind_address, {}).update(health.routes())
    for (host, port), routes in servers.items():
        listeners = await nursery.start(serve_http, host, port, routes)
        for listener in listeners:
            log.info("Serving %s on http://%s", ", ".join(routes), format_address(listener))


def _elector(args: argparse.Namespace, client: Client, namespace: str) -> LeaderElector:
    try:
        return LeaderElector(
            client,
            namespace=args.leader_elect_resource_namespace or namespace,
            name=args.leader_elect_resource_name,
            identity=lease_identity_from_env(),
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
        )
    except ValueError as exc:
        raise errors.TrioControllerError(f"leader election: {exc}") from None


def _first_error(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        ours, _ = exc.split(errors.TrioControllerError)
        exc = (ours or exc).exceptions[0]
    return exc


def main(argv: list[str] | None = None) -> int:
    """The `trio-controller-sharder` command: exit 0 on a signal, 1 with one error line."""
    args = _parser().parse_args(argv)
    klog.setup(args.verbosity, args.logging_format)
    try:
        trio.run(_run, args)
    except BaseException as exc:  # the one place errors become exit codes
        leaf = _first_error(exc)
        if isinstance(leaf, KeyboardInterrupt):
            return 130
        if isinstance(leaf, SystemExit):
            raise
        if args.verbosity >= 4 and args.logging_format == "text":
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        if isinstance(leaf, errors.TrioControllerError):
            message = str(leaf)
        else:
            message = f"unexpected {type(leaf).__name__}: {leaf}"
        print(klog.error_line(message, exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
