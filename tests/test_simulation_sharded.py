"""The sharded simulation (issue 16): shards and a sharder over the model apiserver
(tests/sim/sharded.py) under seeded joins, clean leaves, kill -9s, partitions and sharder
failovers, in virtual time. `python -m tests.sim.run --sharded --seeds N` runs more.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.testing
from sim import run as sim
from sim import sharded
from sim.shardmodel import LEASE_NAMESPACE, ModelClient, ShardModel

from trio_controller.programs.sharder.leases import parse_micro_time
from trio_controller.runtime.leaderelection import LeadershipLost
from trio_controller.runtime.sharding import Shard, ShardOptions

# About 16 s on a loaded machine (load 9), at 100 objects a seed (a seed's schedule does
# not depend on its object count). 6, 20 and 29 are seeds whose shards, partitioned with
# hanging requests, kept reconciling after their Lease expired (fixed).
CI_SEEDS = [*range(0, 16), 20, 29]
CI_OBJECTS = 100


def test_every_ci_seed_keeps_one_owner_per_object_and_one_reconciler_per_key(
    quiet: None,
) -> None:
    results = [sharded.run_sharded_seed(seed, CI_OBJECTS) for seed in CI_SEEDS]
    failed = [r for r in results if not r.ok]
    assert not failed, "\n".join(
        f"seed {r.seed}: {r.failures[:3]}: {sim.reproducer(r.seed, True, CI_OBJECTS)}"
        for r in failed
    )
    # The schedule is not silently empty: shards came and went, objects moved.
    events: dict[str, int] = {}
    for r in results:
        for kind, n in r.stats["events"].items():
            events[kind] = events.get(kind, 0) + n
    for kind in ("join", "leave", "kill", "restart", "partition", "sharder"):
        assert events.get(kind), (kind, events)
    moves = sum(r.stats["moves"] for r in results)
    expected = sum(r.stats["expected_moves"] for r in results)
    assert expected and 0.5 < moves / expected < 1.5, (moves, expected)


def test_the_checker_catches_a_sharder_that_moves_objects_without_draining(
    quiet: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With drains turned into direct moves, objects leave shards that still reconcile
    them: the seeds that rebalance between live shards fail."""
    from trio_controller.programs.sharder import moves

    original = moves.action

    def no_drain(*args: object, **kw: object) -> tuple[str, str] | None:
        what = original(*args, **kw)  # type: ignore[arg-type]
        return ("move", what[1]) if what is not None and what[0] == "drain" else what

    monkeypatch.setattr(moves, "action", no_drain)
    for seed in (0, 1, 3):  # these rebalance between live shards (they pass unpatched)
        failures = sharded.run_sharded_seed(seed, CI_OBJECTS).failures
        assert any("still runs its controllers (no drain" in f for f in failures), failures


def test_the_ledger_catches_a_shard_that_reconciles_an_object_it_handed_back(
    quiet: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard that acknowledges a drain and then reconciles the object anyway overlaps
    the new shard's first reconcile: the ledger sees two shards on one key."""

    def sharded_late(self: Shard, reconcile: Any, store: Any, resource: Any) -> Any:
        async def reconcile_sharded(key: str) -> None:
            obj = store.get(key)
            if obj is None or not self.assigned(obj):
                return
            if self.draining(obj):
                await self.acknowledge_drain(resource, obj)
            await reconcile(key)

        return reconcile_sharded

    monkeypatch.setattr(Shard, "sharded", sharded_late)
    for seed in (0, 1, 5):  # these drain objects (they pass unpatched)
        failures = sharded.run_sharded_seed(seed, CI_OBJECTS).failures
        assert any("still reconciles it" in f for f in failures), failures


def test_a_sharded_seed_replays_exactly(quiet: None) -> None:
    first, second = sharded.run_sharded_seed(3, CI_OBJECTS), sharded.run_sharded_seed(3, CI_OBJECTS)
    assert first.stats == second.stats
    assert first.stats["moves"] and first.stats["reconciles"]


def test_a_shard_whose_renewal_hangs_stops_reconciling_before_its_lease_expires() -> None:
    """Regression (found by seeds 6, 20, 29): a partition that leaves the renew request
    hanging (a half-open connection) kept the shard reconciling until the request's own
    60 s timeout, long after its 15 s Lease expired and the sharder moved its objects to
    other shards. The renew deadline (10 s) now cuts the request, as client-go's does."""

    async def main() -> tuple[float, float]:
        model = ShardModel(lambda *args: None)
        client = ModelClient(model, "s0", random.Random(0))
        shard = Shard(client, ShardOptions("sim", "s0", LEASE_NAMESPACE))  # type: ignore[arg-type]
        stopped_at = -1.0

        async def leading() -> None:
            nonlocal stopped_at
            try:
                await trio.sleep(5.0)
                client.partition_hangs = True
                client.partition_until = trio.current_time() + 120.0
                await trio.sleep_forever()
            finally:
                stopped_at = trio.current_time()

        with pytest.raises(LeadershipLost):
            await shard.run(leading)
        renewed = parse_micro_time(model.leases["s0"]["spec"]["renewTime"]) - sharded.EPOCH
        return stopped_at, renewed + 15.0

    with sharded.virtual_wall_clock():
        stopped_at, expires_at = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert stopped_at < expires_at, (stopped_at, expires_at)
