"""Run seeds: `python -m tests.sim.run --seeds 10000` (or `--seed S` for one, verbose;
`--sharded [--objects N]` for the sharded mode, tests/sim/sharded.py).

One seed, in virtual time (`MockClock(autojump_threshold=0)`, Trio's scheduler seeded):

    the model apiserver + fault schedule + writers ── for `duration` virtual seconds
        ▲ lists (httpx transport), watches (memory streams, chunked bytes)
    Reflector ─▶ Store ─▶ WorkQueue ─▶ workers: reconcile records (key, exists, rv)
    then: faults off, writers done, wait until converged (or `CONVERGE_WITHIN` passed)

Invariants checked at the end: the store equals the model (keys and resourceVersions);
every key's last reconcile saw its final state (so every delete after a sync was
observed, and a key changed while processing was processed again); no two workers held
one key at once; the queue is empty; the reflector never raised. A failing seed prints
the one-line command that reproduces it.

The reflector runs with the pod program's settings (fail fast before the first sync):
the schedule refuses connections only once synced, since an unreachable server at start
is meant to end the program with one line. A connection lost mid-response before the
first sync is retried (it was fatal: tests/test_simulation_regressions.py).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import random
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing

from trio_controller._native import Store
from trio_controller.cache.backoff import Backoff
from trio_controller.cache.reflector import Reflector
from trio_controller.cache.sink import CoreSink
from trio_controller.config import ClusterConfig
from trio_controller.runtime.controller import Controller, ControllerOptions
from trio_controller.runtime.workqueue import WorkQueue
from trio_controller.transport import client as client_module
from trio_controller.transport.client import Client

from .faults import Faults
from .model import Model
from .wire import ModelServer
from .writers import Writers

PODS = "/api/v1/namespaces/default/pods"
CONVERGE_WITHIN = 1800.0  # virtual seconds after quiescing (a stall lasts up to ~630 s)
STOP_WITHIN = 60.0


@dataclass(frozen=True)
class Config:
    """What a seed chose, besides its faults."""

    streaming_list: bool
    page_size: int
    initial: int
    names: int
    workers: int
    async_reconcile: bool
    fail_rate: float
    fault_rate: float
    duration: float
    writes: int  # about how many writes in `duration`
    compact_every: float
    restart_every: float | None

    @classmethod
    def draw(cls, rng: random.Random) -> Config:
        return cls(
            streaming_list=rng.random() < 0.5,
            page_size=rng.choice((1, 2, 3, 7, 500)),
            initial=rng.randint(0, 12),
            names=rng.randint(3, 16),
            workers=rng.randint(1, 4),
            async_reconcile=rng.random() < 0.7,
            fail_rate=rng.choice((0.0, 0.0, 0.1, 0.3)),
            fault_rate=rng.choice((0.0, 0.05, 0.15, 0.3, 0.5, 0.8)),
            duration=rng.choice((20.0, 60.0, 200.0)),
            writes=rng.choice((10, 40, 150)),
            compact_every=rng.choice((2.0, 10.0, 60.0)),
            restart_every=rng.choice((None, 5.0, 30.0)),
        )


@dataclass
class Result:
    seed: int
    failures: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


class SimulatedError(Exception):
    pass


class Recorder:
    """The reconcile: records what it saw of each key, like the pod program's lines;
    fails now and then (at most 3 times in a row per key, below the retry limit)."""

    def __init__(self, store: Store, rng: random.Random, fail_rate: float) -> None:
        self.store = store
        self.rng = rng
        self.fail_rate = fail_rate
        self.in_flight: set[str] = set()
        self.last: dict[str, tuple[bool, str | None]] = {}  # key -> (exists, rv) seen
        self.reconciles = 0
        self.violations: list[str] = []
        self._failures: dict[str, int] = {}

    def _see(self, key: str) -> tuple[bool, str | None]:
        if key in self.in_flight:
            self.violations.append(f"two workers held {key} at once")
        rv = self.store.object_resource_version(key)
        return rv is not None, rv

    def _finish(self, key: str, seen: tuple[bool, str | None]) -> None:
        if self.fail_rate and self._failures.get(key, 0) < 3 and self.rng.random() < self.fail_rate:
            self._failures[key] = self._failures.get(key, 0) + 1
            raise SimulatedError(f"reconcile of {key} failed")
        self._failures[key] = 0
        self.last[key] = seen
        self.reconciles += 1

    def sync(self, key: str) -> None:
        self._finish(key, self._see(key))

    async def reconcile(self, key: str) -> None:
        seen = self._see(key)
        self.in_flight.add(key)
        try:
            if self.rng.random() < 0.3:
                await trio.sleep(self.rng.choice((0.0, 0.001, 0.1, 1.0)))
            else:
                await trio.lowlevel.checkpoint()
            self._finish(key, seen)
        finally:
            self.in_flight.discard(key)


def relists_forget_deletes(reflector: Reflector) -> None:
    """A deliberately broken reflector, to show the checker catches it: a relist's
    replace keeps the objects that vanished in the gap (no tombstones), the classic way
    a controller loses deletes."""
    original = reflector._replace  # internal, on purpose: this breaks it
    store: Store = reflector.store

    def replace(acc: Any, resource_version: str | None) -> None:
        before = {k: store.get_raw(k) for k in store.list_keys()}
        original(acc, resource_version)
        for key, raw in before.items():
            if key not in store and raw is not None:
                store.upsert(raw)

    reflector._replace = replace  # type: ignore[method-assign]


def make_reflector(client: Client, store: Store, queue: WorkQueue, **kw: Any) -> Reflector:
    """A reflector whose informer core writes `store` and feeds `queue`."""
    sink = CoreSink(store)
    sink.add_queue(queue)
    return Reflector(client, PODS, sink, **kw)


def differences(model: Model, store: Store, queue: WorkQueue, rec: Recorder) -> list[str]:
    """Every invariant the converged state breaks (empty: it holds)."""
    out: list[str] = []
    want = {k: o["metadata"]["resourceVersion"] for k, o in model.objects.items()}
    have = {k: store.object_resource_version(k) for k in store.list_keys()}
    for key in sorted(want.keys() | have.keys()):
        if want.get(key) != have.get(key):
            out.append(f"store {key}: rv {have.get(key)} != model {want.get(key)}")
    native = queue.native
    if len(native) or native.processing() or native.delayed():
        out.append(
            f"queue not idle: {len(native)} ready, {native.processing()} processing, "
            f"{native.delayed()} delayed"
        )
    for key in model.ever:
        final = (key in want, want.get(key))
        seen = rec.last.get(key)
        if seen is None:
            if final[0]:
                out.append(f"{key} exists (rv {final[1]}) but was never reconciled")
        elif seen != final:
            what = "delete never observed" if not final[0] else "last reconcile is stale"
            out.append(f"{key}: {what}: last reconcile saw {seen}, final {final}")
    return out


async def simulate(seed: int, *, patch: Callable[[Reflector], None] | None = None) -> Result:
    rng = random.Random(seed)
    cfg = Config.draw(rng)
    result = Result(seed, stats={"config": cfg})

    def sub() -> random.Random:
        return random.Random(rng.getrandbits(64))

    model = Model()
    faults = Faults(sub(), cfg.fault_rate)
    writers = Writers(model, sub(), cfg.names, cfg.duration / cfg.writes)
    writers.seed_objects(cfg.initial)
    store = Store()
    queue = WorkQueue()
    rec = Recorder(store, sub(), cfg.fail_rate)
    reflector_rng, backoff_rng = sub(), sub()
    stopped = trio.Event()
    async with trio.open_nursery() as nursery:
        server = ModelServer(model, faults, nursery)
        config = ClusterConfig("http://sim.invalid")
        async with Client(
            config, transport=server.transport(), watch_connector=server.connect
        ) as client:
            reflector = make_reflector(
                client,
                store,
                queue,
                streaming_list=cfg.streaming_list,
                page_size=cfg.page_size,
                rng=reflector_rng,
                backoff=Backoff(rng=backoff_rng),
            )
            if patch is not None:
                patch(reflector)
            reconcile = rec.reconcile if cfg.async_reconcile else rec.sync
            controller = Controller.over(
                reflector,
                queue,
                reconcile,
                options=ControllerOptions(workers=cfg.workers, cache_sync_timeout=None),
            )

            async def run_controller() -> None:
                try:
                    await controller.run()
                finally:
                    stopped.set()

            async def note_sync() -> None:
                await reflector.synced.wait()
                faults.synced = True

            nursery.start_soon(note_sync)
            nursery.start_soon(run_controller)
            nursery.start_soon(writers.run, trio.current_time() + cfg.duration)
            nursery.start_soon(faults.compactor, model, cfg.compact_every)
            if cfg.restart_every:
                nursery.start_soon(server.restarter, cfg.restart_every)
            await trio.sleep(cfg.duration)
            writers.finish()
            faults.quiesce()
            diffs: list[str] = []
            synced = reflector.synced.is_set
            with trio.move_on_after(CONVERGE_WITHIN):
                while (diffs := differences(model, store, queue, rec)) or not synced():  # noqa: ASYNC110
                    await trio.sleep(1.0)
            result.failures += diffs
            result.failures += rec.violations
            if not reflector.synced.is_set():
                result.failures.append("the cache never synced")
            controller.stop()
            with trio.move_on_after(STOP_WITHIN) as stopping:
                await stopped.wait()
            if stopping.cancelled_caught:
                result.failures.append(f"the controller did not stop within {STOP_WITHIN:g}s")
        nursery.cancel_scope.cancel()
    result.stats.update(
        writes=writers.writes,
        objects=len(model.objects),
        reconciles=rec.reconciles,
        watches=server.watches,
        lists=server.lists,
        relists=getattr(reflector, "relists", None),
        faults=dict(faults.injected),
        answered=dict(server.seen),
        virtual=trio.current_time(),
    )
    return result


@contextlib.contextmanager
def deterministic_scheduling(seed: int) -> Iterator[None]:
    """Trio shuffles each batch of runnable tasks with a module-level Random (pytest-trio
    seeds it the same way under Hypothesis): seeded, a seed replays exactly. Restored
    afterwards, so tests run after a seed keep Trio's usual scheduling."""
    import trio._core._run as trio_run

    allowed, state = trio_run._ALLOW_DETERMINISTIC_SCHEDULING, trio_run._r.getstate()
    trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    trio_run._r.seed(seed)
    try:
        yield
    finally:
        trio_run._ALLOW_DETERMINISTIC_SCHEDULING = allowed  # type: ignore[misc]
        trio_run._r.setstate(state)


_CONTEXTS: list[ssl.SSLContext] = []


def _cached_ssl_context(tls: object) -> ssl.SSLContext:
    """The simulation never speaks TLS; building a client's two contexts (the system CA
    store loaded twice) was half of a seed's time."""
    if not _CONTEXTS:
        _CONTEXTS.append(ssl.create_default_context())
    return _CONTEXTS[0]


def run_seed(seed: int, patch: Callable[[Reflector], None] | None = None) -> Result:
    build = client_module.build_ssl_context
    client_module.build_ssl_context = _cached_ssl_context  # type: ignore[assignment]
    clock = trio.testing.MockClock(autojump_threshold=0)
    try:
        with deterministic_scheduling(seed):
            return trio.run(lambda: simulate(seed, patch=patch), clock=clock)
    except BaseException as exc:  # any escape is a finding
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Result(seed, failures=[f"raised {_describe(exc)}"])
    finally:
        client_module.build_ssl_context = build


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def reproducer(seed: int, sharded: bool = False, objects: int | None = None) -> str:
    mode = " --sharded" if sharded else ""
    if objects is not None:
        mode += f" --objects {objects}"
    return f"PYTHONHASHSEED=0 {sys.executable} -m tests.sim.run{mode} --seed {seed}"


def quiet_logs() -> None:
    logging.getLogger("trio_controller").setLevel(logging.CRITICAL + 1)


def _worker(seeds: range) -> list[Result]:
    quiet_logs()
    return [r for r in map(run_seed, seeds) if not r.ok]


def _sharded_worker(job: tuple[range, int | None]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Failed results, and every seed's move counts (for the verdict's ratio)."""
    from .sharded import run_sharded_seed

    quiet_logs()
    seeds, objects = job
    failed, counts = [], []
    for seed in seeds:
        result = run_sharded_seed(seed, objects)
        if not result.ok:
            failed.append(result)
        counts.append({k: result.stats.get(k) for k in SHARDED_COUNTS})
    return failed, counts


SHARDED_COUNTS = ("objects", "moves", "expected_moves", "moved_fraction", "ideal_fraction",
                  "ring_changes", "reconciles", "max_unowned")  # fmt: skip


def sharded_verdict(counts: list[dict[str, Any]]) -> str:
    """Moves measured against the minimum the ring changes need, over every seed."""
    moves = sum(c["moves"] or 0 for c in counts)
    expected = sum(c["expected_moves"] or 0 for c in counts)
    changes = sum(c["ring_changes"] or 0 for c in counts)
    pairs = [(c["moved_fraction"], c["ideal_fraction"]) for c in counts if c["moved_fraction"]]
    moved = sum(p[0] for p in pairs) / len(pairs) if pairs else 0.0
    ideal = sum(p[1] for p in pairs) / len(pairs) if pairs else 0.0
    ratio = f"{moves / expected:.3f}" if expected else "n/a"
    unowned = max((c["max_unowned"] or 0 for c in counts), default=0)
    return (
        f"{sum(c['objects'] or 0 for c in counts)} objects, {changes} ring changes, "
        f"{sum(c['reconciles'] or 0 for c in counts)} reconciles; moves {moves} / minimum "
        f"{expected} = {ratio}; moved per change {moved:.3f} of the objects (1/N: {ideal:.3f}); "
        f"longest unowned while a shard ran {unowned:.1f}s"
    )


def main_sharded(args: argparse.Namespace) -> int:
    """`--sharded`: the sharded mode (tests/sim/sharded.py)."""
    from .sharded import run_sharded_seed

    if args.seed is not None:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        started = time.perf_counter()
        result = run_sharded_seed(args.seed, args.objects)
        print(result.stats)
        for failure in result.failures:
            print("  ", failure)
        print(f"{time.perf_counter() - started:.1f}s")
        print("ok" if result.ok else f"FAILED: {reproducer(args.seed, True, args.objects)}")
        return 0 if result.ok else 1
    started = time.perf_counter()
    seeds = range(args.start, args.start + args.seeds)
    jobs = max(1, min(args.jobs, args.seeds))
    parts = [(seeds[i::jobs], args.objects) for i in range(jobs)]
    if jobs == 1:
        done = [_sharded_worker(parts[0])]
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            done = pool.map(_sharded_worker, parts)
    failed = [r for f, _ in done for r in f]
    counts = [c for _, cs in done for c in cs]
    elapsed = time.perf_counter() - started
    for r in sorted(failed, key=lambda r: r.seed):
        print(
            f"seed {r.seed}: {r.failures[0]} ({len(r.failures)} failures): "
            f"{reproducer(r.seed, True, args.objects)}"
        )
    print(sharded_verdict(counts))
    print(
        f"sharded: {len(seeds)} seeds, {len(failed)} failed, {elapsed:.1f}s "
        f"({len(seeds) / elapsed:.1f} seeds/s, {jobs} processes)"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.run", description=__doc__)
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds")
    parser.add_argument("--start", type=int, default=0, help="the first seed")
    parser.add_argument("--seed", type=int, help="run this one seed, with logs")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--sharded",
        action="store_true",
        help="the sharded mode: shards and a sharder over the model apiserver",
    )
    parser.add_argument(
        "--objects", type=int, help="sharded mode: objects per seed (default: drawn per seed)"
    )
    args = parser.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0":  # set and dict orders must replay too
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "tests.sim.run", *sys.argv[1:]])
    if args.sharded:
        return main_sharded(args)
    if args.seed is not None:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        result = run_seed(args.seed)
        print(result.stats)
        for failure in result.failures:
            print("  ", failure)
        print("ok" if result.ok else f"FAILED: {reproducer(args.seed)}")
        return 0 if result.ok else 1
    started = time.perf_counter()
    seeds = range(args.start, args.start + args.seeds)
    jobs = max(1, min(args.jobs, args.seeds))
    parts = [seeds[i::jobs] for i in range(jobs)]
    if jobs == 1:
        failed = _worker(seeds)
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            failed = [r for part in pool.map(_worker, parts) for r in part]
    elapsed = time.perf_counter() - started
    for r in sorted(failed, key=lambda r: r.seed):
        print(f"seed {r.seed}: {r.failures[0]} ({len(r.failures)} failures): {reproducer(r.seed)}")
    print(
        f"{len(seeds)} seeds, {len(failed)} failed, {elapsed:.1f}s "
        f"({len(seeds) / elapsed:.0f} seeds/s, {jobs} processes)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
