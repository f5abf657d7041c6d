"""`Manager`: what every operator needs around its controllers, in one nursery.

    from trio_controller import Manager

    async def setup(manager: Manager) -> None:
        recorder = manager.event_recorder("example.com/widget-operator")
        controller = manager.controller(WIDGETS).owns(CONFIGMAPS)
        widgets, configmaps = controller.store, controller.store_of(CONFIGMAPS)

        @controller.reconciler
        async def reconcile(key: str) -> None: ...

    if __name__ == "__main__":
        sys.exit(Manager.main(setup, prog="widget-operator"))

`Manager.main` is the program: it parses the standard flags (runtime/flags.py: the
`trio-controller` CLI's spelling), sets up klog or JSON logging on stderr (httpx's
request lines only at `-v 6`), loads the kubeconfig, opens one `Client`, calls
`setup(manager)`, runs the manager, and turns the outcome into an exit code: 0 after
SIGINT/SIGTERM, 1 with one `error: ...` line for a broken set-up (no traceback unless
`-v 4` or more).

`Manager.run` is the library: one `SharedInformerFactory` for every controller and
lookup, event recorders, extra runnables (`add_runnable`, started with
`nursery.start` semantics), the metrics and probe servers, and leader election:

- **warm standby**: the informers run and sync on every replica; a replica waits for
  its caches before it tries for the Lease, and starts its workers (and the runnables
  that need the leader) only on winning it;
- **release on stop**: a leader that stops clears the Lease's holder, so a follower takes
  over at its next retry; **losing** the Lease cancels the workers at once and `run`
  raises `LeadershipLost` (the program exits 1, as controller-runtime's does);
- **graceful stop** (`stop()`, the first signal): stop watching, let workers finish the
  keys they hold, send the events still waiting, release the Lease; all within
  `graceful_shutdown_timeout` seconds, after which (or on a second `stop()`/signal)
  everything is cancelled.

Metrics (`--metrics-bind-address`): every controller's `workqueue_*{name}` and
`controller_runtime_*{controller}` series (its name in lower case: `widget`), client-go's
`rest_client_*`, and `leader_election_master_status{name=<lease name>}` (1 leading, 0
following; a manager from the flags without `--leader-elect` runs its workers alone and
reports 1 under `--leader-elect-resource-name`). Probes (`--health-probe-bind-address`):
`/healthz` fails when a watch loop died or has been silent for longer than a watch may
be; `/readyz` passes once every cache has synced (a warm follower too).
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio

from trio_controller import errors
from trio_controller.api.resource import Resource
from trio_controller.cache.factory import SharedInformerFactory
from trio_controller.cache.informer import Informer
from trio_controller.cache.options import InformerOptions
from trio_controller.observe import log as klog
from trio_controller.runtime.controller import (
    CacheSyncTimeout,
    Controller,
    ControllerOptions,
    Reconcile,
)
from trio_controller.runtime.events import EventRecorder
from trio_controller.runtime.flags import (
    CACHE_SYNC_TIMEOUT,
    GRACEFUL_SHUTDOWN_TIMEOUT,
    add_flags,
)
from trio_controller.runtime.leaderelection import LeaderElector, lease_identity_from_env

if TYPE_CHECKING:
    import argparse

    from trio_controller.config.cluster import ClusterConfig
    from trio_controller.runtime.sharding import Shard
    from trio_controller.runtime.webhooks import WebhookServer
    from trio_controller.transport.client import Client

__all__ = ["LeaderElection", "Manager", "Runnable", "Setup"]

log = logging.getLogger(__name__)


class Runnable(Protocol):
    """What `Manager.add_runnable` takes: an async callable started with
    `nursery.start`, calling `task_status.started()` once it serves, running until
    cancelled."""

    def __call__(self, *, task_status: trio.TaskStatus[Any] = ...) -> Awaitable[None]: ...


Setup = Callable[["Manager"], Awaitable[None]]


@dataclass(frozen=True)
class LeaderElection:
    """Leader election settings (kube-controller-manager's flags and defaults).

    `name` and `namespace` name the `coordination.k8s.io/v1` Lease; `identity` defaults to
    `$POD_NAME`, else `<hostname>_<uuid>`."""

    name: str
    namespace: str = "default"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str | None = None


def _first_error(exc: BaseException) -> BaseException:
    """The first leaf of an exception group, preferring trio-controller's errors."""
    while isinstance(exc, BaseExceptionGroup):
        ours, _ = exc.split(errors.TrioControllerError)
        exc = (ours or exc).exceptions[0]
    return exc


class Manager:
    """Controllers, informers, event recorders, runnables, servers and leader election
    of one process, started and stopped together (controller-runtime's Manager).

    `Manager(client, namespace=..., workers=..., leader_election=LeaderElection(...),
    metrics_bind_address=(host, port), health_probe_bind_address=(host, port))`; or
    `Manager.from_args(client, args, config)` from the standard flags; or the whole
    program with `Manager.main(setup)`. Extra keyword arguments are the informer
    settings of its `factory` (`compress=True`, `streaming_list=False`, ...).

    - `manager.controller(resource, reconcile, ...)`: a `Controller` on the manager's
      factory, in the manager's namespace (none for a cluster-scoped kind), with its
      number of workers (`add(controller)` adds one built by hand). A reconcile reads
      the controller's own caches: `controller.store` (the primary, with its selectors)
      and `controller.store_of(OWNED)` (what `owns()`/`watches()` feed the queue from);
      without `reconcile`, decorate it with `@controller.reconciler`;
    - `manager.factory`: the `SharedInformerFactory`, for lookups of other kinds. It
      shares one informer per resource, namespace and selectors: asking it for a
      controller's resource with another namespace or selector is another watch and
      another cache (at start, one WARNING names such a cache when it feeds no
      controller, and `-n` given to a program that watches only cluster-wide);
    - `manager.event_recorder(reporting_controller)`: an `EventRecorder` the manager runs
      and, on stop, drains;
    - `manager.add_runnable(fn, needs_leader=False)`: any other service (a webhook
      server, a shard coordinator), started in the manager's nursery;
      `add_observed(controller)` and `add_collector(collector)` put what such a
      service runs in the manager's metrics and probes;
    - `manager.run()`: until `stop()`; `manager.is_leader`, `manager.stopping`.
    """

    def __init__(
        self,
        client: Client,
        *,
        namespace: str | None = None,
        workers: int = 1,
        cache_sync_timeout: float | None = CACHE_SYNC_TIMEOUT,
        graceful_shutdown_timeout: float | None = GRACEFUL_SHUTDOWN_TIMEOUT,
        leader_election: LeaderElection | None = None,
        metrics_bind_address: tuple[str | None, int] | None = None,
        health_probe_bind_address: tuple[str | None, int] | None = None,
        args: argparse.Namespace | None = None,
        informer_options: InformerOptions | None = None,
        webhooks: WebhookServer | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.client = client
        #: The namespace controllers watch by default (None: every namespace).
        self.namespace = namespace
        self.workers = workers
        self.cache_sync_timeout = cache_sync_timeout
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.metrics_bind_address = metrics_bind_address
        self.health_probe_bind_address = health_probe_bind_address
        #: The parsed flags when built by `from_args`/`main` (a program's own flags too).
        self.args = args
        #: The admission and conversion webhook server (`--webhook-bind-address`), None
        #: when off: register handlers on it in the program's setup; it serves on every
        #: replica, leader or not.
        self.webhooks = webhooks
        #: This replica's shard of a ControllerRing (`--controller-ring`), None when not
        #: sharded: every informer of the factory then watches only the objects the
        #: sharder labelled for this shard, the controllers' reconciles skip objects
        #: being drained (acknowledging the drain), and the shard's own Lease takes the
        #: place of leader election (every shard is active; one that loses its Lease
        #: stops its workers).
        self.shard = shard
        if shard is not None:
            if leader_election is not None:
                raise errors.TrioControllerError(
                    "sharding: a shard never needs leader election (drop --leader-elect "
                    "or --controller-ring)"
                )
            informer_options = (informer_options or InformerOptions()).replace(
                label_selector=shard.label_selector
            )
        self.factory = SharedInformerFactory(client, informer_options or InformerOptions())
        self.controllers: list[Controller] = []
        self.leader_election = leader_election
        self.elector: LeaderElector | None = None
        if leader_election is not None:
            try:
                self.elector = LeaderElector(
                    client,
                    namespace=leader_election.namespace,
                    name=leader_election.name,
                    identity=leader_election.identity or lease_identity_from_env(),
                    lease_duration=leader_election.lease_duration,
                    renew_deadline=leader_election.renew_deadline,
                    retry_period=leader_election.retry_period,
                )
            except ValueError as exc:
                raise errors.TrioControllerError(f"leader election: {exc}") from None
        if shard is not None:
            self.elector = shard.lease  # the workers run while the shard holds its Lease
        self._recorders: dict[str, EventRecorder] = {}
        self._runnables: list[tuple[Runnable, bool]] = []
        self._cleanups: list[Callable[[], None]] = []
        self._observed: list[tuple[Controller, bool]] = []
        self._collectors: list[Any] = []
        self._stop_requested = trio.Event()
        self._leading = False
        self._running = False
        self._root: trio.CancelScope | None = None
        self._main = trio.CancelScope()
        self._factory_scope = trio.CancelScope()
        self._factory_done = trio.Event()
        self._servers: list[trio.SocketListener] = []

    # -- building ------------------------------------------------------------------------

    @staticmethod
    def add_flags(
        parser: argparse.ArgumentParser, *, leader_elect_resource_name: str = "trio-controller"
    ) -> argparse.ArgumentParser:
        """Add the standard flags to a program's own parser (runtime/flags.py)."""
        return add_flags(parser, leader_elect_resource_name=leader_elect_resource_name)

    @staticmethod
    def setup_logging(verbosity: int = 0, fmt: klog.Format = "text") -> None:
        """klog's text lines (or JSON) on stderr at `-v verbosity`, as `main` sets them
        up; for a program that runs the manager itself (module function
        `setup_logging`)."""
        setup_logging(verbosity, fmt)

    @classmethod
    def from_args(
        cls,
        client: Client,
        args: argparse.Namespace,
        config: ClusterConfig | None = None,
        informer_options: InformerOptions | None = None,
    ) -> Manager:
        """A manager as the standard flags in `args` ask. The namespace: `-A` all,
        else `-n`, else the kubeconfig context's (`config.namespace`); the Lease's
        namespace: `--leader-elect-resource-namespace`, else that namespace, else
        `default`."""
        if args.all_namespaces:
            namespace = None
        else:
            namespace = args.namespace or (config.namespace if config is not None else None)
        election = None
        if args.leader_elect:
            election = LeaderElection(
                name=args.leader_elect_resource_name,
                namespace=args.leader_elect_resource_namespace or namespace or "default",
                lease_duration=args.leader_elect_lease_duration,
                renew_deadline=args.leader_elect_renew_deadline,
                retry_period=args.leader_elect_retry_period,
            )
        graceful = args.graceful_shutdown_timeout
        shard = None
        if getattr(args, "controller_ring", None):
            from trio_controller.runtime.sharding import Shard

            shard = Shard.from_args(client, args, config.namespace if config else None)
        webhooks = None
        if getattr(args, "webhook_bind_address", None) is not None:
            from trio_controller.runtime.webhooks import webhook_server_from_args

            webhooks = webhook_server_from_args(args)
        return cls(
            client,
            namespace=namespace,
            workers=args.workers,
            cache_sync_timeout=args.cache_sync_timeout or None,
            graceful_shutdown_timeout=None if graceful < 0 else graceful,
            leader_election=election,
            metrics_bind_address=args.metrics_bind_address,
            health_probe_bind_address=args.health_probe_bind_address,
            args=args,
            informer_options=informer_options,
            webhooks=webhooks,
            shard=shard,
        )

    def controller(
        self,
        resource: Resource,
        reconcile: Reconcile | None = None,
        *,
        options: ControllerOptions | None = None,
        **arguments: Any,
    ) -> Controller:
        """A `Controller` for `resource` on the manager's factory, added to the manager.

        `arguments` are `Controller`'s (`name=`, `label_selector=`, `predicates=`,
        `informer_options=`, ...; the namespace defaults to the manager's, none for a
        cluster-scoped resource). `options` (a `ControllerOptions`) default to the
        manager's workers and cache-sync timeout; a value given is used whole. Without
        `reconcile`, decorate it with `@controller.reconciler` once the controller is
        built: the reconcile then reads `controller.store` (the primary's cache, with its
        selectors) and `controller.store_of(OWNED)` (the cache `owns()` reads) directly."""
        arguments.setdefault("namespace", self.namespace if resource.namespaced else None)
        if options is None:
            options = ControllerOptions(
                workers=self.workers, cache_sync_timeout=self.cache_sync_timeout
            )
        if self.shard is not None:
            # Objects being drained reach the reconcile whatever the predicates say (and
            # `add` makes the reconcile hand them back to the sharder).
            predicates = arguments.pop("predicates", ())
            arguments["predicates"] = [self.shard.predicate(*predicates)]
        controller = Controller(
            self.client, resource, reconcile, factory=self.factory, options=options, **arguments
        )
        return self.add(controller)

    def add(self, controller: Controller) -> Controller:
        """Run `controller` with the manager (its workers only on the leader)."""
        if controller.factory is not None and controller.factory is not self.factory:
            raise ValueError("a controller of a Manager must use the manager's factory")
        shard, resource = self.shard, controller.resource
        if shard is not None and resource is not None:
            store = controller.store
            controller.wrap_reconcile(lambda reconcile: shard.sharded(reconcile, store, resource))
        self.controllers.append(controller)
        return controller

    def event_recorder(self, reporting_controller: str, **options: Any) -> EventRecorder:
        """The `EventRecorder` for `reporting_controller` (one per name), run by the
        manager and drained when it stops (what is waiting is sent, within the graceful
        shutdown timeout)."""
        recorder = self._recorders.get(reporting_controller)
        if recorder is None:
            recorder = EventRecorder(self.client, reporting_controller, **options)
            self._recorders[reporting_controller] = recorder
        return recorder

    def add_runnable(self, runnable: Runnable, *, needs_leader: bool = False) -> None:
        """Start `runnable` with the manager: `await nursery.start(runnable)` in its
        nursery, before the controllers; with `needs_leader`, only while this replica
        leads (cancelled when it stops leading). It is cancelled when the manager has
        stopped its controllers."""
        self._runnables.append((runnable, needs_leader))

    def add_observed(self, controller: Controller, *, needs_leader: bool = False) -> None:
        """Serve the metrics and probes of a controller the program runs itself (in a
        runnable, on a factory of its own), as if the manager ran it: its series under
        its lower-case name, and `watch-<name>`/`informer-sync-<name>` checks; with
        `needs_leader`, its cache counts as synced while this replica does not lead."""
        self._observed.append((controller, needs_leader))

    def add_collector(self, collector: Any) -> None:
        """Register a `prometheus_client` collector of the program's own with the
        metrics the manager serves (`--metrics-bind-address`)."""
        self._collectors.append(collector)

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        """Call `cleanup()` after `run` has returned normally (e.g. save a snapshot)."""
        self._cleanups.append(cleanup)

    # -- state -------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """This replica runs its workers: it holds the Lease, or elects no leader."""
        if self.elector is None:
            return self._leading
        return self._leading and self.elector.is_leader

    @property
    def stopping(self) -> bool:
        """`stop()` was called: the manager is shutting down."""
        return self._stop_requested.is_set()

    @property
    def listeners(self) -> list[trio.SocketListener]:
        """The metrics and probe servers' listeners, once `run` has started them."""
        return list(self._servers)

    def stop(self) -> None:
        """Stop gracefully (stop watching, drain workers and events, release the Lease);
        a second call, or the graceful timeout passing, cancels everything."""
        if self._stop_requested.is_set():
            self._cancel()
            return
        self._stop_requested.set()

    def _cancel(self) -> None:
        if self._root is not None:
            self._root.cancel()
        self._main.cancel()

    # -- running -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run everything until `stop()` (started once the servers listen and the
        informers run). Raises the first failure as itself: `CacheSyncTimeout`,
        `LeadershipLost`, an informer's error (`ListFailed`, `Forbidden`, ...)."""
        if self._running:
            raise RuntimeError("a Manager runs once")
        for controller in self.controllers:
            if controller.reconcile is None:
                raise errors.TrioControllerError(
                    f"the {controller.name} controller has no reconcile: pass one to "
                    "manager.controller(...), or decorate it with @controller.reconciler"
                )
        self._running = True
        self._warn_about_caches()
        try:
            await self._run(task_status)
        except BaseExceptionGroup as group:
            raise _first_error(group) from group

    def _warn_about_caches(self) -> None:
        """One WARNING per trap the set-up shows, found once before the start."""
        for lookup, controller, source in lookups_apart(self.controllers, self.factory):
            log.warning(
                "The %s controller's queue is fed from %s, but this manager also caches "
                "%s, which feeds no controller: a reconcile reading that cache misses or "
                "sees other objects; read controller.store / controller.store_of(%s)",
                controller.name,
                describe_informer(source),
                describe_informer(lookup),
                source.resource.kind if source.resource else "...",
            )
        args = self.args
        explicit = getattr(args, "namespace", None) if args is not None else None
        if explicit and not getattr(args, "all_namespaces", False) and self.controllers:
            scoped = [i for i in self.factory.informers if _namespace_of(i) is not None]
            if not scoped:
                log.warning(
                    "-n %s has no effect: this program watches only cluster-scoped kinds "
                    "and every namespace (a cluster-scoped controller's owns() and "
                    "watches() watch all namespaces unless given namespace=)",
                    explicit,
                )

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as root:
            self._root = root.cancel_scope
            await self._start_servers(root)
            if self.webhooks is not None:
                await root.start(self.webhooks.run)
            for recorder in self._recorders.values():
                await root.start(recorder.run)
            for runnable, needs_leader in self._runnables:
                if not needs_leader:
                    await root.start(runnable)
            await root.start(self._run_factory)
            root.start_soon(self._stop_when_asked)
            task_status.started()
            with self._main:
                if self.elector is None:
                    await self._lead()
                else:
                    await self._sync_before_electing()
                    await self.elector.run(self._lead)
            await self._drain_recorders()
            root.cancel_scope.cancel()

    async def _run_factory(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            with self._factory_scope:
                await self.factory.run(task_status=task_status)
        finally:
            self._factory_done.set()

    async def _sync_before_electing(self) -> None:
        """Warm standby: the caches sync before this replica tries for the Lease."""
        timeout = self.cache_sync_timeout
        with trio.move_on_after(timeout if timeout is not None else math.inf) as deadline:
            await self.factory.wait_for_cache_sync()
        if deadline.cancelled_caught:
            raise CacheSyncTimeout(f"timed out waiting for caches to sync after {timeout:g}s")
        objects = sum(len(i.store) for i in self.factory.informers)
        log.info(
            "Caches are synced (%d objects); waiting to lead", objects, extra={"objects": objects}
        )

    async def _lead(self) -> None:
        """Run the controllers' workers and the leader's runnables until they stop."""
        if self.stopping:
            return
        self._leading = True
        try:
            async with trio.open_nursery() as leading:
                for runnable, needs_leader in self._runnables:
                    if needs_leader:
                        await leading.start(runnable)
                async with trio.open_nursery() as controllers:
                    for controller in self.controllers:
                        controllers.start_soon(controller.run)
                    controllers.start_soon(self._stop_requested.wait)
                leading.cancel_scope.cancel()
        finally:
            self._leading = False

    async def _stop_when_asked(self) -> None:
        await self._stop_requested.wait()
        if not self._leading:
            self._main.cancel()  # a follower has nothing to drain: stop trying for the Lease
        # Stop watching first: the informers' last keys reach the queues before they close.
        self._factory_scope.cancel()
        await self._factory_done.wait()
        for controller in self.controllers:
            controller.stop()
        timeout = self.graceful_shutdown_timeout
        await trio.sleep(timeout if timeout is not None else math.inf)
        log.warning("Graceful shutdown timed out after %gs; cancelling", timeout)
        self._cancel()

    async def _drain_recorders(self) -> None:
        for recorder in self._recorders.values():
            recorder.close()
        for recorder in self._recorders.values():
            await recorder.closed()

    # -- servers -----------------------------------------------------------------------

    async def _start_servers(self, nursery: trio.Nursery) -> None:
        """The metrics and probe servers that were asked for (one server per address)."""
        if self.metrics_bind_address is None and self.health_probe_bind_address is None:
            return
        from trio_controller.observe.serving import Route, format_address, serve_http

        servers: dict[tuple[str | None, int], dict[str, Route]] = {}
        if self.metrics_bind_address is not None:
            servers.setdefault(self.metrics_bind_address, {})["/metrics"] = self._metrics_route()
        if self.health_probe_bind_address is not None:
            servers.setdefault(self.health_probe_bind_address, {}).update(self._probe_routes())
        for (host, port), routes in servers.items():
            listeners = await nursery.start(serve_http, host, port, routes)
            self._servers.extend(listeners)
            for listener in listeners:
                log.info("Serving %s on http://%s", ", ".join(routes), format_address(listener))

    def _metrics_route(self) -> Callable[[Mapping[str, list[str]]], Any]:
        from trio_controller.observe.metrics import CONTENT_TYPE_LATEST, Metrics
        from trio_controller.observe.serving import Response

        metrics = Metrics()
        for controller in [*self.controllers, *(c for c, _ in self._observed)]:
            metrics.add_controller(controller)
        for collector in self._collectors:
            metrics.registry.register(collector)
        metrics.add_client(self.client)
        # The Lease's name: elected, or (from the flags) the one it would use; without
        # election a running manager leads by itself, so it reports 1.
        lease = self.leader_election.name if self.leader_election is not None else None
        if lease is None and self.args is not None:
            lease = getattr(self.args, "leader_elect_resource_name", None)
        if lease:
            metrics.add_leader_election(lease, lambda: self.is_leader)
        if self.webhooks is not None:
            metrics.add_webhooks(self.webhooks)

        def scrape(query: Mapping[str, list[str]]) -> Response:
            return Response(200, metrics.exposition(), CONTENT_TYPE_LATEST)

        return scrape

    def _probe_routes(self) -> dict[str, Any]:
        from trio_controller.observe.health import Health

        health = Health()
        health.add_factory(self.factory)
        for controller, needs_leader in self._observed:
            standby = (lambda: not self.is_leader) if needs_leader else (lambda: False)
            health.add_controller(controller, standby=standby, suffix=f"-{controller.name.lower()}")
        return health.routes()

    # -- the program ---------------------------------------------------------------------

    @classmethod
    def main(
        cls,
        setup: Setup,
        *,
        argv: list[str] | None = None,
        parser: argparse.ArgumentParser | None = None,
        args: argparse.Namespace | None = None,
        prog: str | None = None,
        description: str | None = None,
        leader_elect_resource_name: str = "trio-controller",
        informer_options: Callable[[argparse.Namespace], InformerOptions] | None = None,
    ) -> int:
        """Run a program: parse the flags, set up logging, `await setup(manager)`, run
        the manager until SIGINT/SIGTERM; the exit code (0 on a signal, 1 with one
        `error: ...` line on stderr for a failure).

        `parser` is the program's own (its flags are in `manager.args`; the standard
        ones are added unless it has `--kubeconfig` already); `informer_options(args)` gives
        the factory's informer settings from the parsed flags. A program that parsed
        its flags already (so `--version` and `--help` import nothing more) passes
        `args`."""
        if args is None:
            import argparse

            if parser is None:
                parser = argparse.ArgumentParser(prog=prog, description=description)
            if not any("--kubeconfig" in a.option_strings for a in parser._actions):
                add_flags(parser, leader_elect_resource_name=leader_elect_resource_name)
            args = parser.parse_args(argv)
        setup_logging(args.verbosity, args.logging_format)
        options = informer_options(args) if informer_options is not None else None
        try:
            trio.run(cls._program, setup, args, options)
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

    @classmethod
    async def _program(
        cls, setup: Setup, args: argparse.Namespace, options: InformerOptions | None
    ) -> None:
        from trio_controller.config import load_config
        from trio_controller.transport.client import Client

        config = load_config(kubeconfig=args.kubeconfig, context=args.context, master=args.master)
        async with Client(config) as client:
            klog.log_requests(client)
            manager = cls.from_args(client, args, config, informer_options=options)
            with (
                trio.CancelScope() as everything,
                trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
            ):
                async with trio.open_nursery() as nursery:

                    async def on_signal() -> None:
                        async for _ in signals:
                            if manager._running and not manager.stopping:
                                manager.stop()
                            else:  # during set-up, or a second signal
                                manager._cancel()
                                everything.cancel()

                    nursery.start_soon(on_signal)
                    await setup(manager)
                    await manager.run()
                    nursery.cancel_scope.cancel()
            for cleanup in manager._cleanups:
                cleanup()


def _namespace_of(informer: Informer) -> str | None:
    """The namespace an informer is restricted to (None: every namespace, or a
    cluster-scoped kind)."""
    resource = informer.resource
    if resource is None or not resource.namespaced:
        return None
    path = informer.key.path
    if path == resource.path() or "/namespaces/" not in path:
        return None
    return path.split("/namespaces/", 1)[1].partition("/")[0] or None


def describe_informer(informer: Informer) -> str:
    """`resourcequotas in namespace default`, `namespaces with labels a=b`: an
    informer's resource, namespace and selectors, for a log line."""
    resource = informer.resource
    text = resource.plural if resource is not None else informer.key.path
    if resource is not None and resource.namespaced:
        namespace = _namespace_of(informer)
        text += f" in namespace {namespace}" if namespace else " in every namespace"
    key = informer.key
    if key.label_selector:
        text += f" with labels {key.label_selector}"
    if key.field_selector:
        text += f" with fields {key.field_selector}"
    if key.metadata_only:
        text += " (metadata only)"
    return text


def lookups_apart(
    controllers: list[Controller], factory: SharedInformerFactory
) -> list[tuple[Informer, Controller, Informer]]:
    """The informers of `factory` that feed no controller's queue (caches asked for to be
    read) of a resource some controller is fed about through another informer (another
    namespace or selector): (that lookup, the controller, the informer feeding it).
    A reconcile reading the lookup sees other objects than those it is queued for:
    a cluster-scoped owner whose owned kind is read in one namespace, or a primary with a
    label selector read without it."""
    feeding = {id(i) for c in controllers for i in c.informers}
    found = []
    for lookup in factory.informers:
        if id(lookup) in feeding or lookup.resource is None:
            continue
        for controller in controllers:
            for source in controller.informers:
                r = source.resource
                if (
                    r is not None
                    and r.group == lookup.resource.group
                    and r.plural == lookup.resource.plural
                ):
                    found.append((lookup, controller, source))
                    break
    return found


def setup_logging(verbosity: int, fmt: klog.Format = "text") -> None:
    """klog's text lines (or JSON) on stderr for `trio_controller` loggers at `-v
    verbosity`; httpx's own request lines only from `-v 6` (below, WARNING and up)."""
    klog.setup(verbosity, fmt)
    httpx_log = logging.getLogger("httpx")
    if verbosity >= 6:
        httpx_log.handlers[:] = logging.getLogger("trio_controller").handlers[:]
        httpx_log.propagate = False
        httpx_log.setLevel(logging.INFO)
    else:
        httpx_log.setLevel(logging.WARNING)
