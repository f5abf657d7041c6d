"""Random operation sequences: the Rust queue against a pure-Python model of client-go's.

The model below is client-go's `util/workqueue` (queue.go, delaying_queue.go,
rate_limiting_queue.go) written out plainly: a FIFO list, a dirty set, a processing set,
a waiting map of deadlines, and an exponential per-key limiter; plus our two priorities:
a FIFO per priority (listed/resync keys low), a queued low key added at normal moves up,
and every `LOW_EVERY`-th hand-out serves a low key while both levels wait. Every
observable result (get, len, processing, next deadline, promote count, requeues,
shutdown) must match.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_controller._native import ExponentialFailureRateLimiter, ShutDown, WorkQueue

KEYS = ["a", "b", "c", "d"]
LOW_EVERY = 3
LOW_CAUSES = {"listed", "resync"}


@dataclass
class ModelQueue:
    """client-go's rate-limited queue; time is an argument."""

    base: float
    max_delay: float
    low_every: int = 10
    queue: list[str] = field(default_factory=list)  # normal priority
    low: list[str] = field(default_factory=list)
    priority: dict[str, str] = field(default_factory=dict)  # of dirty keys
    streak: int = 0
    dirty: set[str] = field(default_factory=set)
    processing: set[str] = field(default_factory=set)
    shutting_down: bool = False
    # key -> (deadline, insertion sequence)
    waiting: dict[str, tuple[float, int]] = field(default_factory=dict)
    seq: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, cause: str = "manual") -> None:
        if self.shutting_down:
            return
        level = "low" if cause in LOW_CAUSES else "normal"
        if key in self.dirty:
            if level == "normal" and self.priority[key] == "low":
                self.priority[key] = "normal"
                if key in self.low:  # queued: moves up to the back of the normal FIFO
                    self.low.remove(key)
                    self.queue.append(key)
            return
        self.dirty.add(key)
        self.priority[key] = level
        if key in self.processing:
            return
        (self.low if level == "low" else self.queue).append(key)

    def get(self) -> str | None:
        if not self.queue and not self.low:
            if self.shutting_down:
                raise ShutDown
            return None
        if not self.queue or (self.low and self.streak + 1 >= self.low_every):
            key = self.low.pop(0)
            self.streak = 0
        else:
            key = self.queue.pop(0)
            self.streak = self.streak + 1 if self.low else 0
        self.processing.add(key)
        self.dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        # Only keys being processed (the Rust queue ignores the rest; see queue.rs).
        if key not in self.processing:
            return
        self.processing.discard(key)
        if key in self.dirty:
            (self.low if self.priority[key] == "low" else self.queue).append(key)

    def shut_down(self) -> None:
        self.shutting_down = True
        self.waiting.clear()

    def add_after(self, key: str, delay: float, now: float) -> None:
        if self.shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        at = now + delay
        if key in self.waiting and self.waiting[key][0] <= at:
            return
        self.seq += 1
        self.waiting[key] = (at, self.seq)

    def next_ready_at(self) -> float | None:
        return min((at for at, _ in self.waiting.values()), default=None)

    def promote(self, now: float) -> int:
        due = sorted((v, k) for k, v in self.waiting.items() if v[0] <= now)
        for _, key in due:
            del self.waiting[key]
            self.add(key)
        return len(due)

    def when(self, key: str) -> float:
        exp = self.failures.get(key, 0)
        self.failures[key] = exp + 1
        return min(self.base * 2**exp, self.max_delay)

    def add_rate_limited(self, key: str, now: float) -> None:
        self.add_after(key, self.when(key), now)


key_st = st.sampled_from(KEYS)
cause_st = st.sampled_from(["manual", "listed", "resync", "updated"])
op_st = st.one_of(
    st.tuples(st.just("add"), key_st, cause_st),
    st.tuples(st.just("get")),
    st.tuples(st.just("done"), key_st),
    st.tuples(st.just("add_after"), key_st, st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0])),
    st.tuples(st.just("add_rate_limited"), key_st),
    st.tuples(st.just("forget"), key_st),
    st.tuples(st.just("tick"), st.sampled_from([0.25, 0.5, 1.0, 4.0])),
    st.tuples(st.just("shut_down")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op_st, max_size=60))
def test_the_rust_queue_behaves_like_client_go(ops: list[tuple]) -> None:
    real = WorkQueue(ExponentialFailureRateLimiter(base=0.5, max_delay=4.0), low_every=LOW_EVERY)
    model = ModelQueue(base=0.5, max_delay=4.0, low_every=LOW_EVERY)
    now = 0.0
    for op in ops:
        name = op[0]
        if name == "add":
            real.add(op[1], now, op[2])
            model.add(op[1], op[2])
        elif name == "get":
            try:
                expected: object = model.get()
            except ShutDown:
                expected = ShutDown
            try:
                got: object = real.get_nowait(now)
            except ShutDown:
                got = ShutDown
            assert got == expected
        elif name == "done":
            real.done(op[1], now)
            model.done(op[1])
        elif name == "add_after":
            real.add_after(op[1], op[2], now)
            model.add_after(op[1], op[2], now)
        elif name == "add_rate_limited":
            real.add_rate_limited(op[1], now)
            model.add_rate_limited(op[1], now)
        elif name == "forget":
            real.forget(op[1])
            model.failures.pop(op[1], None)
        elif name == "tick":
            now += op[1]
            assert real.promote(now) == model.promote(now)
        elif name == "shut_down":
            real.shut_down()
            model.shut_down()
        assert len(real) == len(model.queue) + len(model.low)
        assert real.len_low() == len(model.low)
        assert real.processing() == len(model.processing)
        assert real.delayed() == len(model.waiting)
        assert real.next_ready_at() == model.next_ready_at()
        assert real.shutting_down() == model.shutting_down
        assert real.metrics(now)["depth"] == len(model.dirty)
        for key in KEYS:
            assert real.num_requeues(key) == model.failures.get(key, 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(KEYS), max_size=40), st.integers(1, 5))
def test_batched_calls_match_single_calls(keys: list[str], batch: int) -> None:
    single = WorkQueue()
    batched = WorkQueue()
    for k in keys:
        single.add(k, 0.0)
    batched.add_many(keys, 0.0)
    got_single = []
    while (k := single.get_nowait(0.0)) is not None:
        got_single.append(k)
    got_batched: list[str] = []
    while chunk := batched.get_many_nowait(batch, 0.0):
        got_batched += chunk
    assert got_single == got_batched
    batched.done_many(got_batched, 0.0)
    assert batched.processing() == 0
