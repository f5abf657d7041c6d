"""The sharded simulation: N shards and a sharder over the model apiserver, in virtual time.

    python -m tests.sim.run --sharded --seeds 1000 [--objects 100000]

Real code, over the model's HTTP-free client (shardmodel.ModelClient):
- each shard is `trio_controller.runtime.sharding.Shard`: its `ShardLease` (leader
  election's machinery) holds the shard Lease, and every key goes through
  `Shard.sharded(...)` (skip what is not ours, acknowledge drains with the real patch);
- the sharder is `programs.sharder.Sharder`'s own `assign` and `_resync_if_due` (hence
  `Mover.resync`, `moves.action`, the real `HashRing` and `leases.shard_of` /
  `settle_wait`), and the real `LeaseKeeper.reconcile` keeps the Lease states and
  acquires expired Leases; two sharder replicas elect a leader with `LeaderElector`.
Modelled: the informers (each follows the model's write log after a seeded lag and
keeps the objects its label selector matches), the workqueue (one key at a time, a key
added while processing runs again after), and the sharder's controllers (a loop that
calls the real reconcile functions on every Lease change and every tick).

Membership by seed: shards join, leave cleanly, are killed (-9; some restart later
under the same name), or are partitioned (requests refused, or hanging like a half-open
connection); the active sharder is killed. Checked at every step:
- a label write never takes an object from a shard that is still running its
  controllers to another one (that must go through the drain: the old shard removes
  its own label);
- no key is reconciled by two shards at once (a ledger of reconcile intervals);
- an object is unowned only transiently while a shard runs (at most `UNOWNED_LIMIT`);
- moves stay near the minimum: label moves between shards at most twice the moves the ring
  changes the sharder went through require (+1 % of the objects), reported as a ratio.
At the end (faults off, membership still): every object is on the shard the ring of
the running shards names, with no drain label, and was reconciled by it.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import trio
import trio.testing

from trio_controller import errors
from trio_controller.api.resource import Resource
from trio_controller.programs.sharder import sharder as sharder_module
from trio_controller.programs.sharder.leasekeeper import LeaseKeeper, micro_time
from trio_controller.programs.sharder.moves import Mover, RingResource
from trio_controller.programs.sharder.ring import HashRing
from trio_controller.runtime import leaderelection
from trio_controller.runtime.leaderelection import LeaderElector, LeadershipLost
from trio_controller.runtime.sharding import (
    LABEL_CONTROLLER_RING,
    Shard,
    ShardOptions,
    drain_label,
    shard_label,
)

from .run import Result
from .shardmodel import LEASE_NAMESPACE, ModelClient, ShardModel

RING = "sim"
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
RR = RingResource(WIDGETS)
EPOCH = 1_800_000_000.0  # the wall clock at virtual time 0
UNOWNED_LIMIT = 60.0  # an object unowned this long while a shard runs is a finding
CONVERGE_WITHIN = 600.0  # at least; more for many objects on few workers
RECONCILE_SECONDS = (0.0, 0.0, 0.0, 0.001, 0.01, 0.05, 0.5, *(0.01,) * 12, 5.0)
SETTLE = 5.0


def wall() -> float:
    """The wall clock of the simulated world (Lease times), from Trio's virtual clock."""
    return EPOCH + trio.current_time()


@contextlib.contextmanager
def virtual_wall_clock() -> Iterator[None]:
    """Leader election stamps renewTime with the wall clock; in the simulation the wall
    clock is virtual, as the sharder's `now`."""
    original = leaderelection._micro_time
    leaderelection._micro_time = lambda: micro_time(wall())  # type: ignore[assignment]
    try:
        yield
    finally:
        leaderelection._micro_time = original  # type: ignore[assignment]


@dataclass(frozen=True)
class ShardedConfig:
    objects: int
    shards: int  # at the start
    sharders: int
    duration: float
    mean_gap: float  # between membership events
    creates: int  # objects created while running
    workers: int
    informer_lag: tuple[float, ...]
    hang_partitions: bool

    @classmethod
    def draw(cls, rng: random.Random, objects: int | None = None) -> ShardedConfig:
        drawn = rng.choice((20, 100, 300, 1000))  # drawn always: `objects` changes no other draw
        return cls(
            objects=drawn if objects is None else objects,
            shards=rng.randint(0, 4),
            sharders=rng.choice((1, 2)),
            duration=rng.choice((120.0, 300.0)),
            mean_gap=rng.choice((10.0, 25.0, 60.0)),
            creates=rng.choice((0, 10, 100)),
            workers=rng.randint(1, 4),
            informer_lag=rng.choice(((0.0, 0.01), (0.0, 0.1, 0.5), (0.05, 1.0, 3.0))),
            hang_partitions=rng.random() < 0.5,
        )


class Ledger:
    """Who reconciles which key when, in virtual time; a second shard starting a key
    another shard is still reconciling is a violation."""

    def __init__(self, violations: list[str]) -> None:
        self.open: dict[str, str] = {}  # key -> shard reconciling it now
        self.last: dict[str, tuple[str, float]] = {}  # key -> (shard, end) of the last one
        self.violations = violations
        self.reconciles = 0

    def start(self, key: str, shard: str) -> None:
        other = self.open.get(key)
        if other is not None:
            self.violations.append(
                f"{key} reconciled by {shard} while {other} still reconciles it "
                f"(t={trio.current_time():.3f})"
            )
        self.open[key] = shard
        self.reconciles += 1

    def end(self, key: str, shard: str) -> None:
        if self.open.get(key) == shard:
            del self.open[key]
        self.last[key] = (shard, trio.current_time())


class KeyQueue:
    """A workqueue's semantics: a key is processed by one worker at a time; added while
    processing, it runs again after."""

    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.dirty: set[str] = set()
        self.processing: set[str] = set()
        self.lot = trio.lowlevel.ParkingLot()

    def add(self, key: str) -> None:
        if key in self.dirty:
            return
        self.dirty.add(key)
        if key not in self.processing:
            self.queue.append(key)
            self.lot.unpark()

    async def get(self) -> str:
        while not self.queue:
            await self.lot.park()
        key = self.queue.popleft()
        self.dirty.discard(key)
        self.processing.add(key)
        return key

    def done(self, key: str) -> None:
        self.processing.discard(key)
        if key in self.dirty:
            self.queue.append(key)
            self.lot.unpark()

    def add_after(self, nursery: trio.Nursery, key: str, delay: float) -> None:
        async def later() -> None:
            await trio.sleep(delay)
            self.add(key)

        nursery.start_soon(later)


@dataclass
class World:
    """Everything one seed shares: the model, the checks' state, the processes."""

    rng: random.Random
    cfg: ShardedConfig
    model: ShardModel = field(init=False)
    violations: list[str] = field(default_factory=list)
    leading: set[str] = field(default_factory=set)  # shards running their controllers
    ledger: Ledger = field(init=False)
    owner: dict[str, str] = field(default_factory=dict)  # key -> last non-empty shard
    assigned_at: dict[str, float] = field(default_factory=dict)
    unowned_since: dict[str, float] = field(default_factory=dict)
    no_shard_since: float | None = 0.0  # since when no shard runs (None: one runs)
    shards_since: float = 0.0  # since when some shard runs without a gap
    moves: int = 0
    expected_moves: int = 0
    ring_changes: list[tuple[int, int, int]] = field(default_factory=list)  # (N0, N1, moves)
    max_unowned: float = 0.0
    last_ring: HashRing = field(default_factory=HashRing)
    _desired: dict[tuple[str, ...], list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model = ShardModel(self.label_changed)
        self.model.ring = RING
        self.model.shard_label = shard_label(RING)
        self.model.drain_label = drain_label(RING)
        self.ledger = Ledger(self.violations)

    def sub(self) -> random.Random:
        return random.Random(self.rng.getrandbits(64))

    # -- checks at every label write -------------------------------------------------------

    def label_changed(self, key: str, old: str, new: str, draining: bool) -> None:
        now = trio.current_time()
        if old and new and old != new and old in self.leading:
            self.violations.append(
                f"{key} moved from {old} to {new} while {old} still runs its controllers "
                f"(no drain; t={now:.3f})"
            )
        if new:
            self.unowned_since.pop(key, None)
            if new != self.owner.get(key, new):
                self.moves += 1
            if new != old:
                self.assigned_at[key] = now
            self.owner[key] = new
        else:
            self.unowned_since.setdefault(key, now)

    def desired(self, running: tuple[str, ...]) -> list[str]:
        """The shard of every object (in `model.keys` order) on the ring of `running`."""
        cached = self._desired.get(running)
        if cached is None or len(cached) != len(self.model.keys):
            ring = HashRing(running)
            cached = [ring.shard_for(RR.hash_key(self.model.objects[k])) for k in self.model.keys]
            self._desired = {running: cached}
        return cached

    def shard_started(self, name: str) -> None:
        if not self.leading:
            self.shards_since = trio.current_time()
        self.leading.add(name)
        self.no_shard_since = None

    def shard_stopped(self, name: str) -> None:
        self.leading.discard(name)
        if not self.leading:
            self.no_shard_since = trio.current_time()

    def check_unowned(self) -> None:
        """An object unowned for `UNOWNED_LIMIT` while some shard ran all along."""
        if self.no_shard_since is not None or not self.unowned_since:
            return
        now = trio.current_time()
        oldest = min(self.unowned_since.values())
        self.max_unowned = max(self.max_unowned, now - max(oldest, self.shards_since))
        if now - max(oldest, self.shards_since) > UNOWNED_LIMIT:
            key = min(self.unowned_since, key=self.unowned_since.__getitem__)
            self.violations.append(
                f"{key} unowned for {now - oldest:.1f}s while shards {sorted(self.leading)} ran"
            )
            self.unowned_since.clear()  # report once

    def ring_used(self, ring: HashRing) -> None:
        """The sharder assigns or moves by `ring`: if its shards differ from the last
        non-empty ring used, count the moves the change implies, over the objects now."""
        if not ring or ring.nodes == self.last_ring.nodes:
            return
        old, self.last_ring = self.last_ring, ring
        if not old:
            return
        changed = 0
        for k in self.model.keys:
            hash_key = RR.hash_key(self.model.objects[k])
            if old.shard_for(hash_key) != ring.shard_for(hash_key):
                changed += 1
        self.expected_moves += changed
        self.ring_changes.append((len(old.nodes), len(ring.nodes), changed))


# -- a shard process --------------------------------------------------------------------


class ShardProcess:
    """One replica of a sharded controller: the real `Shard` (Lease, drain handling) with
    a modelled informer and workqueue; reconciles go into the ledger."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.client = ModelClient(world.model, name, world.sub())
        self.rng = world.sub()
        self.scope = trio.CancelScope()
        self.shard = Shard(
            self.client,  # type: ignore[arg-type]
            ShardOptions(RING, name, LEASE_NAMESPACE),
        )

    async def run(self) -> None:
        with self.scope:
            while True:
                try:
                    await self.shard.run(self.leading)
                except LeadershipLost:
                    # The program exits on a lost Lease; its pod restarts it.
                    await trio.sleep(self.rng.choice((1.0, 5.0, 20.0)))
                    self.shard = Shard(
                        self.client,  # type: ignore[arg-type]
                        ShardOptions(RING, self.name, LEASE_NAMESPACE),
                    )

    def kill(self) -> None:
        """kill -9: no request leaves any more, nothing is released."""
        self.client.dead = True
        self.scope.cancel()

    def stop(self) -> None:
        """A clean stop: the controllers end and the Lease is released."""
        self.scope.cancel()

    async def leading(self) -> None:
        world = self.world
        world.shard_started(self.name)
        if len(world.leading) == 1:
            world._shards_since = trio.current_time()
        try:
            cache: dict[str, dict[str, Any]] = {}
            queue = KeyQueue()
            reconcile = self.shard.sharded(self.reconcile, cache, WIDGETS)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.informer, cache, queue)
                for _ in range(world.cfg.workers):
                    nursery.start_soon(self.worker, queue, reconcile, nursery)
        finally:
            world.shard_stopped(self.name)

    async def informer(self, cache: dict[str, dict[str, Any]], queue: KeyQueue) -> None:
        """A label-selected informer: list, then follow the write log after a lag."""
        model, label, lag = self.world.model, self.shard.shard_label, self.world.cfg.informer_lag
        await trio.sleep(self.rng.choice(lag))
        for key in model.keys:
            obj = model.get(key)
            if obj is not None and obj["metadata"]["labels"].get(label) == self.name:
                cache[key] = obj
                queue.add(key)
        cursor = len(model.log)
        while True:
            if cursor == len(model.log):
                await model.changed.wait()
            await trio.sleep(self.rng.choice(lag))
            if (cut := self.client.partition_until - trio.current_time()) > 0:
                await trio.sleep(cut)  # the watch is cut off: the cache goes stale
            end = len(model.log)
            for kind, key in model.log[cursor:end]:
                if kind != "obj":
                    continue
                obj = model.get(key)
                mine = obj is not None and obj["metadata"]["labels"].get(label) == self.name
                if mine:
                    cache[key] = obj  # type: ignore[assignment]
                    queue.add(key)
                elif cache.pop(key, None) is not None:
                    queue.add(key)  # DELETED from this shard's view
            cursor = end

    async def worker(self, queue: KeyQueue, reconcile: Any, nursery: trio.Nursery) -> None:
        while True:
            key = await queue.get()
            try:
                await reconcile(key)
            except errors.TrioControllerError:
                queue.add_after(nursery, key, self.rng.choice((0.1, 0.5, 2.0)))
            finally:
                queue.done(key)

    async def reconcile(self, key: str) -> None:
        ledger = self.world.ledger
        ledger.start(key, self.name)
        try:
            await trio.sleep(self.rng.choice(RECONCILE_SECONDS))
        finally:
            ledger.end(key, self.name)


# -- the sharder ----------------------------------------------------------------------------


class LaggingView:
    """A modelled informer's store: `list_keys`, `labels`, `get` of what it has seen."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.changed = trio.Event()

    def list_keys(self) -> list[str]:
        return list(self.items)

    def labels(self, key: str) -> dict[str, str] | None:
        obj = self.items.get(key)
        return None if obj is None else obj["metadata"].get("labels")

    def get(self, key: str) -> dict[str, Any] | None:
        return self.items.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.items

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class SharderProcess:
    """One sharder replica: leader election, then the real Sharder's methods driven by
    modelled informers (shard Leases; objects without the shard label)."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.client = ModelClient(world.model, name, world.sub())
        self.rng = world.sub()
        self.scope = trio.CancelScope()
        self.active: Any = None

    def kill(self) -> None:
        self.client.dead = True
        self.scope.cancel()

    async def run(self) -> None:
        with self.scope:
            while True:
                elector = LeaderElector(
                    self.client,  # type: ignore[arg-type]
                    namespace=LEASE_NAMESPACE,
                    name="trio-controller-sharder",
                    identity=self.name,
                    rng=self.rng,
                )
                with contextlib.suppress(LeadershipLost):
                    await elector.run(self.leading)
                await trio.sleep(1.0)

    def _sharder(self, leases: LaggingView, unassigned: LaggingView) -> Any:
        """The real `Sharder` without its informers and controllers (they are modelled)."""
        s = sharder_module.Sharder.__new__(sharder_module.Sharder)
        s.client = self.client
        s.namespace = LEASE_NAMESPACE
        s.sync_period = sharder_module.SYNC_PERIOD
        s.settle = SETTLE
        s.concurrent_moves = sharder_module.CONCURRENT_MOVES
        s.now = wall
        s.leases_informer = SimpleNamespace(store=leases)
        s.rings = {}
        s.assigned = 0
        s._nursery = None
        s.keeper = LeaseKeeper(self.client, leases, lambda ring: ring == RING, now=wall)  # type: ignore[arg-type]
        return s

    async def leading(self) -> None:
        leases, unassigned = LaggingView(), LaggingView()
        sharder = self._sharder(leases, unassigned)
        ring = sharder_module._Ring(RING, resources=(RR,))
        ring.mover = Mover(self.client, RING, concurrent=sharder.concurrent_moves)  # type: ignore[arg-type]
        ring.controllers = {WIDGETS: SimpleNamespace(store=unassigned)}
        sharder.rings[RING] = ring
        self.active = sharder
        queue = KeyQueue()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.follow, leases, unassigned, queue)
                nursery.start_soon(self.ring_loop, sharder, ring, leases)
                for _ in range(4):
                    nursery.start_soon(self.assigner, sharder, ring, queue, nursery)
        finally:
            self.active = None

    async def follow(self, leases: LaggingView, unassigned: LaggingView, queue: KeyQueue) -> None:
        """The two informers: shard Leases (by the ring label), unassigned objects."""
        model, lag = self.world.model, self.world.cfg.informer_lag
        label = shard_label(RING)
        cursor = 0
        while True:
            if cursor == len(model.log):
                await model.changed.wait()
            await trio.sleep(self.rng.choice(lag))
            end = len(model.log)
            leases_changed = False
            for kind, key in model.log[cursor:end]:
                if kind == "lease":
                    lease = model.leases.get(key)
                    if lease is not None and LABEL_CONTROLLER_RING in lease["metadata"].get(
                        "labels", {}
                    ):
                        # Keyed as an informer's store keys them: namespace/name.
                        leases.items[f"{LEASE_NAMESPACE}/{key}"] = model.lease(key)
                    else:
                        leases.items.pop(f"{LEASE_NAMESPACE}/{key}", None)
                    leases_changed = True
                    continue
                obj = model.get(key)
                if obj is not None and label not in obj["metadata"]["labels"]:
                    unassigned.items[key] = obj
                    queue.add(key)
                elif unassigned.items.pop(key, None) is not None:
                    queue.add(key)
            cursor = end
            if leases_changed:
                leases.notify()

    async def ring_loop(self, sharder: Any, ring: Any, leases: LaggingView) -> None:
        """The Lease controller and the ring controller: the real reconciles, on every
        Lease change and at least every second."""
        world = self.world
        while True:
            for key in leases.list_keys():
                with contextlib.suppress(errors.TrioControllerError):
                    await sharder.keeper.reconcile(key)
            after = await sharder._resync_if_due(ring, sharder.shards(RING))
            world.ring_used(ring.hash_ring)
            changed = leases.changed
            with trio.move_on_after(min(1.0, max(after, 0.01))):
                await changed.wait()

    async def assigner(
        self, sharder: Any, ring: Any, queue: KeyQueue, nursery: trio.Nursery
    ) -> None:
        while True:
            key = await queue.get()
            try:
                after = await sharder.assign(ring, RR, key)
                self.world.ring_used(ring.hash_ring)
                if after:
                    queue.add_after(nursery, key, after)
            except errors.TrioControllerError:
                queue.add_after(nursery, key, 1.0)
            finally:
                queue.done(key)


# -- one seed ---------------------------------------------------------------------------------


def final_differences(world: World) -> list[str]:
    """What is not settled yet: objects not on the ring's shard, drains, stale reconciles."""
    out: list[str] = []
    running = tuple(sorted(world.leading))
    if not running:
        return ["no shard runs"]
    desired = world.desired(running)
    label, drain = shard_label(RING), drain_label(RING)
    last, assigned_at = world.ledger.last, world.assigned_at
    for key, want in zip(world.model.keys, desired, strict=False):
        labels = world.model.objects[key]["labels"]
        have = labels.get(label, "")
        if have != want:
            out.append(f"{key} on {have or 'no shard'}, the ring of {list(running)} says {want}")
        elif drain in labels:
            out.append(f"{key} still carries the drain label")
        elif (seen := last.get(key)) is None or seen[0] != want or seen[1] < assigned_at[key]:
            out.append(f"{key} not reconciled by its shard {want} since assigned (last {seen})")
        if len(out) >= 5:
            break
    return out


async def simulate_sharded(seed: int, objects: int | None = None) -> Result:
    rng = random.Random(seed)
    cfg = ShardedConfig.draw(rng, objects)
    world = World(rng, cfg)
    result = Result(seed, stats={"config": cfg})
    model = world.model
    events: dict[str, int] = {}
    names = iter(f"s{i}" for i in range(1000))
    for i in range(cfg.objects):
        model.create(f"w-{i:07d}")
    created = cfg.objects
    shards: dict[str, ShardProcess] = {}
    killed: list[str] = []
    sharders: list[SharderProcess] = []
    plan = world.sub()

    async with trio.open_nursery() as nursery:

        def start_shard(name: str) -> None:
            proc = shards[name] = ShardProcess(world, name)
            nursery.start_soon(proc.run)

        def start_sharder(name: str) -> None:
            proc = SharderProcess(world, name)
            sharders.append(proc)
            nursery.start_soon(proc.run)

        async def checker() -> None:
            while True:
                world.check_unowned()
                await trio.sleep(1.0)

        for i in range(cfg.sharders):
            start_sharder(f"sharder-{i}")
        for _ in range(cfg.shards):
            start_shard(next(names))
            await trio.sleep(plan.choice((0.0, 0.5, 3.0)))
        nursery.start_soon(checker)
        end = trio.current_time() + cfg.duration
        while True:
            gap = plan.expovariate(1.0 / cfg.mean_gap)
            if trio.current_time() + gap >= end:
                break
            await trio.sleep(gap)
            for _ in range(plan.randint(0, cfg.creates // 10 + 1) if cfg.creates else 0):
                model.create(f"w-{created:07d}")
                created += 1
            live = [n for n, p in shards.items() if not p.scope.cancel_called]
            what = plan.choice(("join", "join", "leave", "kill", "kill", "partition", "sharder"))
            if what == "join" or not live:
                if killed and plan.random() < 0.5:
                    name = killed.pop(plan.randrange(len(killed)))
                    what = "restart"
                else:
                    name, what = next(names), "join"
                start_shard(name)
            elif what == "leave" and len(live) > 1:
                shards[plan.choice(live)].stop()
            elif what == "kill":
                name = plan.choice(live)
                shards[name].kill()
                killed.append(name)
            elif what == "partition":
                client = shards[plan.choice(live)].client
                client.partition_hangs = cfg.hang_partitions and plan.random() < 0.7
                client.partition_until = trio.current_time() + plan.choice((3.0, 12.0, 40.0))
            elif what == "sharder" and len(sharders) > 1:
                active = [p for p in sharders if p.active is not None and not p.client.dead]
                if active:
                    victim = active[0]
                    victim.kill()
                    start_sharder(f"{victim.name}-restarted")
            else:
                what = "none"
            events[what] = events.get(what, 0) + 1
        # Quiesce: partitions heal, at least one shard runs, membership stays.
        for proc in shards.values():
            proc.client.partition_until = -1.0
        if not [p for p in shards.values() if not p.scope.cancel_called]:
            start_shard(next(names))
        diffs: list[str] = []
        converge = max(CONVERGE_WITHIN, len(model.keys) * 0.5 / cfg.workers)
        with trio.move_on_after(converge):
            while diffs := final_differences(world):  # noqa: ASYNC110
                await trio.sleep(1.0)
        result.failures += world.violations
        result.failures += diffs
        nursery.cancel_scope.cancel()
    objects_now = len(model.keys)
    ratio = world.moves / world.expected_moves if world.expected_moves else None
    fractions = [m / objects_now for _, _, m in world.ring_changes]
    ideal = [1 / max(a, b) for a, b, _ in world.ring_changes]
    slack = max(10, objects_now // 100)
    if world.moves > 2 * world.expected_moves + slack:
        result.failures.append(
            f"{world.moves} moves, more than twice the {world.expected_moves} the ring "
            f"changes {[(a, b) for a, b, _ in world.ring_changes]} need"
        )
    result.stats.update(
        objects=objects_now,
        reconciles=world.ledger.reconciles,
        events=events,
        ring_changes=len(world.ring_changes),
        moves=world.moves,
        expected_moves=world.expected_moves,
        moves_ratio=ratio,
        moved_fraction=sum(fractions) / len(fractions) if fractions else None,
        ideal_fraction=sum(ideal) / len(ideal) if ideal else None,
        max_unowned=round(world.max_unowned, 3),
        virtual=trio.current_time(),
    )
    return result


def run_sharded_seed(seed: int, objects: int | None = None) -> Result:
    """One seed of the sharded mode, in virtual time with Trio's scheduling seeded."""
    from .run import _describe, deterministic_scheduling

    clock = trio.testing.MockClock(autojump_threshold=0)
    try:
        with deterministic_scheduling(seed), virtual_wall_clock():
            return trio.run(lambda: simulate_sharded(seed, objects), clock=clock)
    except BaseException as exc:  # any escape is a finding
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Result(seed, failures=[f"raised {_describe(exc)}"])
