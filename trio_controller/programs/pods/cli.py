"""`trio-controller`: client-go's workqueue example for Pods, on Trio.

    trio-controller [--kubeconfig PATH] [--context NAME] [--master URL]
                    [--namespace NS | --all-namespaces] [--workers N]
                    [--resync SECONDS] [--cache-snapshot PATH] [-v N]
                    [--metrics-bind-address HOST:PORT] [--health-probe-bind-address HOST:PORT]
                    [--logging-format text|json] [--cache-sync-timeout SECONDS] [--version]

stdout carries one line per processed key; stderr carries klog-style (or JSON) logs.
Failures print one line naming the cause and exit 1; no traceback unless `-v 4` or more.
`/metrics` and the probes (`/healthz`, `/readyz`) are served from the Trio loop, on
addresses of their own or on one shared address.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import trio

from trio_controller import __version__, errors
from trio_controller import config as kubeconfig
from trio_controller.cache.snapshot import check_snapshot_path, load_snapshot, save_snapshot
from trio_controller.observe import log as klog
from trio_controller.observe.health import Health
from trio_controller.observe.metrics import CONTENT_TYPE_LATEST, Metrics
from trio_controller.programs.pods.printer import pod_controller
from trio_controller.runtime.controller import CACHE_SYNC_TIMEOUT, Controller
from trio_controller.runtime.leaderelection import LeaderElector, lease_identity_from_env
from trio_controller.runtime.serving import (
    Response,
    Route,
    format_address,
    parse_bind_address,
    serve_http,
)
from trio_controller.transport.client import Client

log = logging.getLogger("trio_controller.programs.pods.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trio-controller",
        description="Watch Pods and print a line for every key the workqueue hands out.",
    )
    p.add_argument("--kubeconfig", metavar="PATH", help="path to a kubeconfig file (must exist)")
    p.add_argument("--context", metavar="NAME", help="the kubeconfig context to use")
    p.add_argument("--master", metavar="URL", help="the API server URL (overrides the kubeconfig)")
    ns = p.add_mutually_exclusive_group()
    ns.add_argument("-n", "--namespace", metavar="NS", help="the namespace to watch")
    ns.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    p.add_argument(
        "--workers", type=_positive_int, default=1, metavar="N", help="worker tasks (default 1)"
    )
    p.add_argument(
        "--resync", type=float, default=None, metavar="SECONDS", help="re-enqueue every key"
    )
    p.add_argument(
        "--cache-snapshot",
        type=Path,
        metavar="PATH",
        help="save the cache on exit, load it on start",
    )
    p.add_argument(
        "--compress-cache",
        action="store_true",
        help="keep cached objects LZ4-compressed: about a third less memory, a few µs more "
        "per event",
    )
    p.add_argument(
        "--streaming-list",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sync with a watch that sends the initial events (WatchList) where the server "
        "supports it, else list+watch (default: on)",
    )
    le = p.add_argument_group("leader election (kube-controller-manager's flags)")
    le.add_argument(
        "--leader-elect",
        action="store_true",
        help="run only while holding a coordination.k8s.io Lease (one active replica)",
    )
    le.add_argument("--leader-elect-resource-name", default="trio-controller-pods", metavar="NAME")
    le.add_argument(
        "--leader-elect-resource-namespace",
        metavar="NS",
        help="where the Lease lives (default: the watched namespace, else default)",
    )
    le.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="S")
    le.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="S")
    le.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="S")
    p.add_argument(
        "--cache-sync-timeout",
        type=_non_negative_float,
        default=CACHE_SYNC_TIMEOUT,
        metavar="SECONDS",
        help=f"give up (exit 1) if the cache has not synced by then; 0 waits forever "
        f"(default {CACHE_SYNC_TIMEOUT:g})",
    )
    ob = p.add_argument_group("observability (controller-runtime's flags)")
    ob.add_argument(
        "--metrics-bind-address",
        type=_bind_address,
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (:PORT for every "
        "interface; default 0: off)",
    )
    ob.add_argument(
        "--health-probe-bind-address",
        type=_bind_address,
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
    ob.add_argument(
        "-v",
        "--v",
        dest="verbosity",
        type=int,
        default=0,
        metavar="N",
        help="klog verbosity: 2 relists and watch restarts, 4 list pages, resourceVersions, "
        "bookmarks and tracebacks, 6 every request",
    )
    p.add_argument("--version", action="version", version=f"trio-controller {__version__}")
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be a number of seconds, 0 or more")
    return value


def _bind_address(text: str) -> tuple[str | None, int] | None:
    try:
        return parse_bind_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _run(args: argparse.Namespace) -> None:
    config = kubeconfig.load_config(
        kubeconfig=args.kubeconfig, context=args.context, master=args.master
    )
    namespace = None if args.all_namespaces else (args.namespace or config.namespace)
    async with Client(config) as client:
        controller = pod_controller(
            client,
            namespace=namespace,
            workers=args.workers,
            resync=args.resync,
            compress=args.compress_cache,
            streaming_list=args.streaming_list,
            cache_sync_timeout=args.cache_sync_timeout or None,
        )
        klog.log_requests(client)
        where = f"namespace {namespace}" if namespace else "every namespace"
        log.log(klog.v(2), "Watching pods in %s at %s", where, client.server)
        if args.cache_snapshot is not None:
            check_snapshot_path(args.cache_snapshot)  # fail now, not on exit
            loaded = load_snapshot(controller.store, args.cache_snapshot)
            log.info("Loaded %d cached objects from %s", loaded, args.cache_snapshot)
        elector = None
        if args.leader_elect:
            elector = _elector(args, client, namespace)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await _start_servers(nursery, args, client, controller, elector)

                async def on_signal() -> None:
                    async for _ in signals:
                        waiting = elector is not None and not elector.is_leader
                        if controller.stopping or waiting:
                            nursery.cancel_scope.cancel()  # a second signal, or not leading
                        controller.stop()

                nursery.start_soon(on_signal)
                if elector is None:
                    await controller.run()
                else:
                    await elector.run(controller.run)
                nursery.cancel_scope.cancel()
        if args.cache_snapshot is not None:
            save_snapshot(controller.store, args.cache_snapshot)


async def _start_servers(
    nursery: trio.Nursery,
    args: argparse.Namespace,
    client: Client,
    controller: Controller,
    elector: LeaderElector | None,
) -> None:
    """The metrics and probe servers that were asked for (one server per address)."""
    servers: dict[tuple[str | None, int], dict[str, Route]] = {}
    if args.metrics_bind_address is not None:
        metrics = Metrics()
        metrics.add_controller(controller)
        metrics.add_client(client)

        def scrape(query: object) -> Response:
            return Response(200, metrics.exposition(), CONTENT_TYPE_LATEST)

        servers.setdefault(args.metrics_bind_address, {})["/metrics"] = scrape
    if args.health_probe_bind_address is not None:
        health = Health()
        standby = (lambda: not elector.is_leader) if elector is not None else (lambda: False)
        health.add_controller(controller, standby=standby)
        servers.setdefault(args.health_probe_bind_address, {}).update(health.routes())
    for (host, port), routes in servers.items():
        listeners = await nursery.start(serve_http, host, port, routes)
        for listener in listeners:
            log.info("Serving %s on http://%s", ", ".join(routes), format_address(listener))


def _elector(args: argparse.Namespace, client: Client, namespace: str | None) -> LeaderElector:
    try:
        return LeaderElector(
            client,
            namespace=args.leader_elect_resource_namespace or namespace or "default",
            name=args.leader_elect_resource_name,
            identity=lease_identity_from_env(),
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
        )
    except ValueError as exc:
        raise errors.TrioControllerError(f"leader election: {exc}") from None


def _first_error(exc: BaseException) -> BaseException:
    """The first leaf of an exception group, preferring our own errors."""
    while isinstance(exc, BaseExceptionGroup):
        ours, _ = exc.split(errors.TrioControllerError)
        exc = (ours or exc).exceptions[0]
    return exc


def main(argv: list[str] | None = None) -> int:
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
