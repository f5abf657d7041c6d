"""Shard Lease states and the sharder's Lease controller, under MockClock.

The state function is pure (a Lease and a time); the Lease controller runs against an
in-memory Lease endpoint (fault injection: conflicts on cue) with its clock tied to
Trio's, so the original sharder's timings are checked to the second without waiting."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import trio
import trio.testing

from trio_controller import errors
from trio_controller.programs.sharder.leasekeeper import LeaseKeeper, micro_time
from trio_controller.programs.sharder.leases import (
    SHARDER_IDENTITY,
    ShardState,
    parse_micro_time,
    settle_wait,
    shard_of,
    shards_of,
)
from trio_controller.runtime.sharding import LABEL_CONTROLLER_RING, LABEL_STATE

EPOCH = 1_800_000_000.0  # wall-clock seconds at Trio time 0
RING = "widget-operator"


def lease(name: str, *, holder: str | None = None, renewed: float = EPOCH,
          duration: int = 15) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "ops",
            "resourceVersion": "1",
            "labels": {LABEL_CONTROLLER_RING: RING},
        },
        "spec": {
            "holderIdentity": name if holder is None else holder,
            "leaseDurationSeconds": duration,
            "acquireTime": micro_time(renewed),
            "renewTime": micro_time(renewed),
        },
    }


# -- the states ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "state"),
    [
        (0.0, ShardState.READY),
        (14.9, ShardState.READY),
        (15.0, ShardState.EXPIRED),
        (29.9, ShardState.EXPIRED),
        (30.0, ShardState.UNCERTAIN),
        (500.0, ShardState.UNCERTAIN),
    ],
)
def test_a_held_lease_is_ready_then_expired_then_uncertain_after_one_more_duration(
    after: float, state: ShardState
) -> None:
    assert shard_of(lease("r1"), EPOCH + after).state is state


def test_a_released_lease_is_dead_and_orphaned_a_minute_after_it_expired() -> None:
    released = lease("r1", holder="", duration=1)
    assert shard_of(released, EPOCH).state is ShardState.DEAD
    assert shard_of(released, EPOCH + 60.9).state is ShardState.DEAD
    assert shard_of(released, EPOCH + 61.0).state is ShardState.ORPHANED


def test_a_lease_held_by_anyone_but_the_shard_of_its_name_is_dead() -> None:
    assert shard_of(lease("r1", holder=SHARDER_IDENTITY), EPOCH).state is ShardState.DEAD
    assert shard_of(lease("r1", holder="r2"), EPOCH).state is ShardState.DEAD


def test_a_lease_missing_its_times_counts_as_expired_now() -> None:
    bare = lease("r1")
    del bare["spec"]["renewTime"]
    assert shard_of(bare, EPOCH).state is ShardState.EXPIRED
    assert shard_of(bare, EPOCH).times.lease_duration == 15.0


def test_states_read_and_write_the_original_label_values() -> None:
    assert [s.label for s in ShardState if s] == [
        "orphaned", "dead", "uncertain", "expired", "ready",
    ]  # fmt: skip
    assert ShardState.from_label("uncertain") is ShardState.UNCERTAIN
    assert ShardState.from_label("nonsense") is ShardState.UNKNOWN
    assert ShardState.READY.on_ring and not ShardState.EXPIRED.on_ring
    assert ShardState.EXPIRED.holds_objects and not ShardState.DEAD.holds_objects


def test_assignments_wait_a_few_seconds_after_a_shard_joins_and_not_after_that() -> None:
    old = lease("r1", renewed=EPOCH - 100)
    old["spec"]["renewTime"] = micro_time(EPOCH - 1)
    joined = lease("r2", renewed=EPOCH - 1)
    gone = lease("r3", holder="", renewed=EPOCH)
    assert settle_wait(shards_of([old], EPOCH).values(), 3.0, EPOCH) == 0.0
    shards = shards_of([old, joined, gone], EPOCH).values()
    assert settle_wait(shards, 3.0, EPOCH) == 2.0  # r2 acquired its lease a second ago
    assert settle_wait(shards, 0.0, EPOCH) == 0.0
    future = shards_of([lease("r4", renewed=EPOCH + 60)], EPOCH).values()  # a skewed clock
    assert settle_wait(future, 3.0, EPOCH) == 3.0


def test_micro_times_round_trip() -> None:
    assert parse_micro_time(micro_time(EPOCH + 0.25)) == EPOCH + 0.25
    assert parse_micro_time("not a time") is None


# -- the Lease controller ------------------------------------------------------------------


class LeaseEndpoint:
    """Leases in memory, with resourceVersions and their conflicts; `store` is what an
    informer would show (the current Lease)."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.rv = 1
        self.conflict_next = False
        self.writes: list[tuple[float, str, str]] = []  # (trio time, verb, state label)

    def put(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.leases[self.key(obj)] = obj

    @staticmethod
    def key(obj: dict[str, Any]) -> str:
        return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"

    def get(self, key: str) -> dict[str, Any] | None:
        found = self.leases.get(key)
        return copy.deepcopy(found) if found is not None else None

    async def request_json(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        await trio.lowlevel.checkpoint()
        if method == "POST":  # a create: 409 when the name is taken
            if self.key(body) in self.leases:
                raise errors.Conflict(409, "AlreadyExists")
            self.put(body)
            self.writes.append(
                (trio.current_time(), method, body["metadata"]["labels"][LABEL_STATE])
            )
            return self.get(self.key(body))
        parts = path.split("/")
        key = f"{parts[-3]}/{parts[-1]}"
        current = self.leases.get(key)
        if current is None:
            raise errors.NotFound(404, "NotFound")
        rv = (body.get("metadata") or {}).get("resourceVersion") or body.get(
            "preconditions", {}
        ).get("resourceVersion")
        if self.conflict_next or (rv and rv != current["metadata"]["resourceVersion"]):
            self.conflict_next = False
            raise errors.Conflict(409, "Conflict")
        if method == "DELETE":
            del self.leases[key]
            self.writes.append((trio.current_time(), "delete", ""))
            return None
        if method == "PATCH":
            updated = copy.deepcopy(current)
            updated["metadata"]["labels"].update(body["metadata"]["labels"])
        else:
            updated = copy.deepcopy(body)
        self.put(updated)
        state = updated["metadata"]["labels"][LABEL_STATE]
        self.writes.append((trio.current_time(), method, state))
        return self.get(key)


def keeper_for(endpoint: LeaseEndpoint, rings: set[str] | None = None) -> LeaseKeeper:
    return LeaseKeeper(
        endpoint,  # type: ignore[arg-type]
        endpoint,
        lambda ring: ring in (rings if rings is not None else {RING}),
        now=lambda: EPOCH + trio.current_time(),
    )


async def keep(keeper: LeaseKeeper, key: str, until: float) -> None:
    """What the controller does: reconcile, then again after the seconds returned."""
    while trio.current_time() < until:
        after = await keeper.reconcile(key)
        if after is None:
            return
        await trio.sleep(after)


async def test_a_killed_shard_is_labelled_ready_then_acquired_as_dead_at_expiry_then_deleted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    endpoint.put(lease("r1"))  # renewed at t=0, 15 s, then never again (kill -9)
    keeper = keeper_for(endpoint)
    await keep(keeper, "ops/r1", until=1000)
    (t_ready, _, ready), (t_dead, verb, dead), (t_deleted, deleted, _) = endpoint.writes
    assert (t_ready, ready) == (0, "ready")
    # Acquired as soon as it expired: holder shardlease-controller for twice 15 s.
    assert 15.0 <= t_dead < 15.1 and (verb, dead) == ("PUT", "dead")
    assert keeper.acquired == 1
    # Dead, then orphaned a minute after the acquired Lease (30 s) expired: deleted.
    assert 15.0 + 30 + 60 <= t_deleted < 15.0 + 30 + 60 + 0.2 and deleted == "delete"
    assert endpoint.get("ops/r1") is None


async def test_a_renewing_shard_stays_ready_and_its_lease_is_written_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    endpoint.put(lease("r1"))
    keeper = keeper_for(endpoint)

    async def renew() -> None:
        while True:
            await trio.sleep(2)
            renewed = endpoint.get("ops/r1")
            assert renewed is not None
            renewed["spec"]["renewTime"] = micro_time(EPOCH + trio.current_time())
            endpoint.put(renewed)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(renew)
        await keep(keeper, "ops/r1", until=120)
        nursery.cancel_scope.cancel()
    assert [w[2] for w in endpoint.writes] == ["ready"]
    assert keeper.acquired == 0


async def test_a_released_lease_is_labelled_dead_at_once_and_is_never_acquired(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    endpoint.put(lease("r1", holder="", duration=1))
    keeper = keeper_for(endpoint)
    await keep(keeper, "ops/r1", until=1000)
    states = [(round(t, 1), s) for t, _, s in endpoint.writes]
    assert states == [(0, "dead"), (61.0, "")]  # deleted a minute after it expired
    assert keeper.acquired == 0


async def test_a_conflicting_write_is_left_for_the_newer_lease_to_settle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    endpoint.put(lease("r1", renewed=EPOCH - 20))  # expired 5 s ago
    endpoint.conflict_next = True  # the shard renewed just before we acquired
    keeper = keeper_for(endpoint)
    assert await keeper.reconcile("ops/r1") is None
    assert keeper.acquired == 0 and endpoint.writes == []


async def test_leases_of_rings_that_do_not_exist_are_left_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    endpoint.put(lease("r1", renewed=EPOCH - 100))
    keeper = keeper_for(endpoint, rings=set())
    assert await keeper.reconcile("ops/r1") is None
    assert endpoint.writes == []
    assert await keeper.reconcile("ops/absent") is None


# -- the fence: moves without a drain only under the sharder's own hold ----------------------


async def test_a_released_lease_is_held_by_the_sharder_before_its_objects_move(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    endpoint.put(lease("r1", holder=""))  # a clean stop: released
    keeper = keeper_for(endpoint)
    until = await keeper.fence("ops", "r1", RING)
    assert until == EPOCH + 30  # twice the shard's 15 s
    held = endpoint.get("ops/r1")
    assert held is not None and held["spec"]["holderIdentity"] == SHARDER_IDENTITY
    assert [(verb, state) for _, verb, state in endpoint.writes] == [("PUT", "dead")]
    # Held with more than FENCE_MIN left: the same hold, no second write.
    await trio.sleep(5)
    assert await keeper.fence("ops", "r1", RING) == EPOCH + 30
    assert len(endpoint.writes) == 1


async def test_a_hold_running_out_is_taken_again_for_the_shards_duration_twice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    endpoint.put(lease("r1", holder=SHARDER_IDENTITY, renewed=EPOCH - 25, duration=30))
    keeper = keeper_for(endpoint)
    assert await keeper.fence("ops", "r1", RING) == EPOCH + 30  # 5 s were left: renewed
    renewed = endpoint.get("ops/r1")
    assert renewed is not None and renewed["spec"]["leaseDurationSeconds"] == 30


async def test_a_shard_that_holds_its_lease_again_is_not_fenced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    endpoint.put(lease("r1"))  # restarted under the same name: ready
    keeper = keeper_for(endpoint)
    assert await keeper.fence("ops", "r1", RING) is None
    assert endpoint.writes == []


async def test_a_fence_that_meets_a_newer_lease_fails_and_writes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    endpoint.put(lease("r1", holder=""))
    endpoint.conflict_next = True  # the shard took its Lease back since the sharder looked
    keeper = keeper_for(endpoint)
    assert await keeper.fence("ops", "r1", RING) is None
    assert endpoint.writes == []


async def test_a_shard_without_a_lease_is_fenced_by_creating_one_held_by_the_sharder(
    autojump_clock: trio.testing.MockClock,
) -> None:
    endpoint = LeaseEndpoint()
    keeper = keeper_for(endpoint)
    assert await keeper.fence("ops", "gone", RING) == EPOCH + 30
    made = endpoint.get("ops/gone")
    assert made is not None and made["spec"]["holderIdentity"] == SHARDER_IDENTITY
    assert made["metadata"]["labels"] == {LABEL_CONTROLLER_RING: RING, LABEL_STATE: "dead"}
    # The keeper then treats it as any dead Lease: deleted once orphaned.
    await keep(keeper, "ops/gone", until=1000)
    assert endpoint.get("ops/gone") is None
