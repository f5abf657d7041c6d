"""Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics.

Several replicas run; the one holding the Lease leads. The holder renews it every
`retry_period`; the others try to take it over once it has not changed for
`lease_duration`, measured on their *own* clock from when they last saw it change (so
clock skew between machines does not matter, as in client-go). A leader that cannot
renew within `renew_deadline` stops leading. Writes carry the Lease's resourceVersion,
so two candidates can never both win: the apiserver rejects the slower one (409).

    elector = LeaderElector(client, namespace="default", name="my-controller")
    await elector.run(controller.run)  # waits to lead; cancelled if leadership is lost

Times come from `trio.current_time()`, so `MockClock` drives the loops in tests; the
Lease's own timestamps are wall-clock MicroTime, as the API defines them.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import trio

from trio_controller import errors
from trio_controller.transport.client import Client

log = logging.getLogger(__name__)

JITTER = 1.2  # client-go's JitterFactor: retries wait retry_period * (1 + 1.2 * rand)
# A follower polls the Lease every retry_period * (1 + 0.5 * rand): less spread than
# client-go's 1.2, so a released Lease is taken over within 1.5 retry periods.
ACQUIRE_JITTER = 0.5


class LeadershipLost(errors.TrioControllerError):
    """This replica could not renew its Lease in time and stopped leading."""


def default_identity() -> str:
    """`<hostname>_<uuid>`, as client-go's examples build it."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Observed:
    """The Lease as last read, and when (our clock) its record last changed."""

    lease: dict[str, Any] | None
    changed_at: float


class LeaderElector:
    """One candidate for the Lease `namespace/name`, as `identity` (see the module).

    `run(leading)` waits to lead, runs `leading()` while renewing, and releases the Lease
    after (`release_on_cancel`, client-go's ReleaseOnCancel): the holder is cleared so a
    follower takes over at its next retry. `is_leader` says whether this replica held the
    Lease when it last read or wrote it. A `Manager` runs one for `--leader-elect`."""

    def __init__(
        self,
        client: Client,
        *,
        namespace: str,
        name: str,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if not lease_duration > renew_deadline > JITTER * retry_period > 0:
            raise ValueError(
                "need lease_duration > renew_deadline > 1.2 * retry_period > 0 (client-go)"
            )
        self.client = client
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.leases = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self.rng = rng or random.Random()
        self._observed = _Observed(None, -float("inf"))

    # -- public ------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """This replica held the Lease when it last read or wrote it."""
        spec = (self._observed.lease or {}).get("spec", {})
        return bool(spec.get("holderIdentity") == self.identity)

    async def run(self, leading: Callable[[], Awaitable[None]]) -> None:
        """Acquire the Lease, run `leading()` while renewing it, release it after.

        If renewing fails for `renew_deadline`, `leading()` is cancelled and
        `LeadershipLost` is raised; an exception from `leading()` propagates as itself.
        """
        await self.acquire()
        lost = False
        try:
            async with trio.open_nursery() as nursery:

                async def keep() -> None:
                    nonlocal lost
                    await self.renew_until_lost()
                    lost = True
                    nursery.cancel_scope.cancel()

                nursery.start_soon(keep)
                await leading()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            if not lost and self.release_on_cancel:
                with trio.CancelScope(shield=True), trio.move_on_after(self.retry_period):
                    await self.release()
        if lost:
            raise LeadershipLost(f"lost the lease {self.namespace}/{self.name}")

    async def acquire(self) -> None:
        """Return once this replica holds the Lease."""
        log.info("attempting to acquire leader lease %s/%s...", self.namespace, self.name)
        # Polling is the protocol: the Lease is only ever read and written.
        while not await self.try_acquire_or_renew():  # noqa: ASYNC110
            await trio.sleep(self._jittered())
        log.info("successfully acquired lease %s/%s", self.namespace, self.name)

    async def renew_until_lost(self) -> None:
        """Renew every `retry_period`; return when renewing failed for `renew_deadline`.
        A request that hangs (a half-open connection) is cut at the deadline, as
        client-go's renew context is: the Lease may expire before the request's own
        timeout, and another replica may lead by then."""
        while True:
            await trio.sleep(self.retry_period)
            deadline = trio.current_time() + self.renew_deadline
            with trio.move_on_at(deadline):
                while not await self.try_acquire_or_renew():
                    if trio.current_time() + self.retry_period > deadline:
                        break
                    await trio.sleep(self.retry_period)
                else:
                    continue
            log.warning(
                "failed to renew lease %s/%s within %.1fs",
                self.namespace,
                self.name,
                self.renew_deadline,
            )
            return

    async def release(self) -> None:
        """Give the Lease up at once (holder cleared, duration 1 s), if we hold it."""
        lease = self._observed.lease
        if lease is None or not self.is_leader:
            return
        spec = lease["spec"]
        released = {
            **lease,
            "spec": {
                **spec,
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "renewTime": _micro_time(),
            },
        }
        try:
            self._observe(await self.client.request_json("PUT", self.path, released))
            log.info("released lease %s/%s", self.namespace, self.name)
        except errors.TrioControllerError as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)

    # -- one attempt -------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One client-go `tryAcquireOrRenew`: True if we hold the Lease afterwards."""
        now = _micro_time()
        try:
            current = await self.client.request_json("GET", self.path)
        except errors.NotFound:
            return await self._create(now)
        except errors.TrioControllerError as exc:
            log.info("error retrieving lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        self._observe(current)
        spec = current.get("spec", {})
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired(spec):
            return False
        new_spec = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "renewTime": now,
        }
        if holder != self.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            updated = await self.client.request_json(
                "PUT", self.path, {**current, "spec": new_spec}
            )
        except errors.TrioControllerError as exc:
            # 409: someone else wrote first; they win this round.
            log.info("failed to update lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        self._observe(updated)
        return True

    async def _create(self, now: str) -> bool:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            self._observe(await self.client.request_json("POST", self.leases, lease))
        except errors.TrioControllerError as exc:
            log.info("failed to create lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        return True

    def _observe(self, lease: dict[str, Any]) -> None:
        """Remember `lease`; its record changed if its spec did (client-go compares the
        whole record and stamps the change with the local clock)."""
        old = self._observed.lease
        if old is None or old.get("spec") != lease.get("spec"):
            self._observed = _Observed(lease, trio.current_time())
        else:
            self._observed.lease = lease

    def _expired(self, spec: dict[str, Any]) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return self._observed.changed_at + duration <= trio.current_time()

    def _jittered(self) -> float:
        return self.retry_period * (1.0 + ACQUIRE_JITTER * self.rng.random())


def lease_identity_from_env() -> str:
    """POD_NAME if the downward API set it, else `<hostname>_<uuid>`."""
    return os.environ.get("POD_NAME") or default_identity()
