"""Health probes the apiserver's way: `/healthz` (alive) and `/readyz` (ready), as routes.

    health = Health()
    health.add_controller(controller)   # healthz: watch; readyz: informer-sync
    routes = health.routes()            # {"/healthz": ..., "/readyz": ...} for serve_http

A check returns None when it passes, else the reason. Both endpoints answer `200 ok`
when every check passes, else 503 with one line per check (`[+]ping ok`,
`[-]informer-sync failed: cache not synced`) and `readyz check failed`; `?verbose`
lists the checks of a passing answer too, ending with `readyz check passed`.

- `watch` (healthz) fails when the controller's reflector task died, or when its watch
  loop has shown no activity (`reflector.last_activity_at`: every socket read and every
  state transition) for longer than a watch may legitimately stay silent: the server
  ends a watch after at most 10 minutes, the reflector gives up on a silent one 30 s
  after that, so `STALL_AFTER` is 11 minutes. A controller not running (a standby replica
  waiting for its Lease) passes.
- `informer-sync` (readyz) passes once `reflector.synced` is set, or while `standby()`
  says this replica is not leading (its caches start only when it leads, and a standby
  replica that is never ready would block every rollout).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import trio

from trio_controller.cache.reflector import IDLE_MARGIN, WATCH_TIMEOUT_RANGE
from trio_controller.observe.serving import Response, Route

if TYPE_CHECKING:
    from trio_controller.cache.factory import SharedInformerFactory
    from trio_controller.runtime.controller import Controller

__all__ = [
    "STALL_AFTER",
    "Check",
    "Health",
    "factory_sync_check",
    "factory_watch_check",
    "informer_sync_check",
    "watch_check",
]

Check = Callable[[], str | None]

STALL_AFTER = WATCH_TIMEOUT_RANGE[1] + IDLE_MARGIN + 30.0


def _ping() -> str | None:
    return None


class Health:
    """Named liveness and readiness checks, served as `/healthz` and `/readyz`."""

    def __init__(self) -> None:
        self.liveness: list[tuple[str, Check]] = [("ping", _ping)]
        self.readiness: list[tuple[str, Check]] = [("ping", _ping)]

    def add_liveness_check(self, name: str, check: Check) -> None:
        """Add a `/healthz` check: `check()` returns None when it passes, else why not."""
        self.liveness.append((name, check))

    def add_readiness_check(self, name: str, check: Check) -> None:
        """Add a `/readyz` check: `check()` returns None when it passes, else why not."""
        self.readiness.append((name, check))

    def add_controller(
        self,
        controller: Controller,
        *,
        standby: Callable[[], bool] = lambda: False,
        suffix: str = "",
    ) -> None:
        """`watch` and `informer-sync` checks for `controller` (names get `suffix`)."""
        self.add_liveness_check(f"watch{suffix}", lambda: watch_check(controller))
        self.add_readiness_check(
            f"informer-sync{suffix}", lambda: informer_sync_check(controller, standby)
        )

    def add_factory(self, factory: SharedInformerFactory) -> None:
        """`watch` and `informer-sync` checks over every informer of `factory` (the
        Manager's): alive unless a running watch loop has been silent for `STALL_AFTER`;
        ready once every cache has synced, on a follower too (its caches run warm)."""
        self.add_liveness_check("watch", lambda: factory_watch_check(factory))
        self.add_readiness_check("informer-sync", lambda: factory_sync_check(factory))

    def routes(self) -> dict[str, Route]:
        """`/healthz` and `/readyz` for `serve_http`."""
        return {
            "/healthz": lambda query: _report("healthz", self.liveness, query),
            "/readyz": lambda query: _report("readyz", self.readiness, query),
        }


def watch_check(controller: Controller) -> str | None:
    """None while the watch loop is alive (or not running at all), else why not."""
    if controller.reflector_error is not None:
        return f"reflector stopped: {controller.reflector_error}"
    if not controller.reflector_running:
        return None
    silent = trio.current_time() - controller.reflector.last_activity_at
    if silent > STALL_AFTER:
        return f"no watch activity for {silent:.0f}s"
    return None


def factory_watch_check(factory: SharedInformerFactory) -> str | None:
    """None while every running informer's watch loop shows activity, else which not."""
    now = trio.current_time()
    for informer in factory.informers:
        if not informer.running:
            continue
        silent = now - informer.reflector.last_activity_at
        if silent > STALL_AFTER:
            return f"no watch activity on {informer.key.path} for {silent:.0f}s"
    return None


def factory_sync_check(factory: SharedInformerFactory) -> str | None:
    """None once every informer of `factory` has synced."""
    return None if factory.has_synced else "cache not synced"


def informer_sync_check(controller: Controller, standby: Callable[[], bool]) -> str | None:
    """None once `controller`'s cache has synced (or while `standby()`), else why not."""
    if controller.reflector.synced.is_set() or standby():
        return None
    return "cache not synced"


def _report(kind: str, checks: list[tuple[str, Check]], query: Mapping[str, list[str]]) -> Response:
    lines = []
    failed = False
    for name, check in checks:
        try:
            reason = check()
        except Exception as exc:  # a broken check fails, it does not break the probe
            reason = f"check raised {type(exc).__name__}: {exc}"
        if reason is None:
            lines.append(f"[+]{name} ok")
        else:
            failed = True
            lines.append(f"[-]{name} failed: {reason}")
    if failed:
        lines.append(f"{kind} check failed")
        return Response(503, ("\n".join(lines) + "\n").encode())
    if "verbose" in query:
        lines.append(f"{kind} check passed")
        return Response(200, ("\n".join(lines) + "\n").encode())
    return Response(200, b"ok")
