"""The seeded fault schedule: what goes wrong with each request, from one `random.Random`.

    plan = faults.watch_plan()   # error status, ERROR event, drop at a byte, stall, early end
    plan = faults.list_plan()    # 410/429/500, refused, torn body, stall
    await faults.compactor(model)   # etcd compaction now and then

`rate` is the chance that a request gets a fault; `quiesce()` turns every fault off for
the convergence phase (a stall already under way stays until the client gives up, as
it would on a real network).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import trio

from .model import Model

# Where a dropped connection ends inside a frame: the response head, a chunk's hex size
# line, its payload, its closing CRLF, or exactly between two frames.
DROP_PLACES = ("head", "size", "data", "crlf", "boundary")


@dataclass(frozen=True)
class Drop:
    """Close the connection in frame `frame` (0: the response head, n: the n-th chunk
    after it, the last chunk `0\\r\\n\\r\\n` included), at `place`, `fraction` into it."""

    frame: int
    place: str
    fraction: float

    def offset(self, frame: bytes) -> int:
        """How many bytes of `frame` go out before the connection closes."""
        if self.frame == 0 or self.place == "head":
            return int(self.fraction * len(frame))
        size_line = frame.index(b"\r\n") + 2
        if self.place == "size":
            return int(self.fraction * size_line)
        if self.place == "data":
            return size_line + int(self.fraction * (len(frame) - size_line - 2))
        if self.place == "crlf":
            return len(frame) - 2 + int(self.fraction * 2)
        return len(frame)


@dataclass(frozen=True)
class WatchPlan:
    status: int | None = None  # answer this error status instead of the watch
    gone_as_status: bool = False  # a too-old rv answered as HTTP 410, not an ERROR event
    error_after: int | None = None  # an ERROR event (then the end) after this many events
    error_code: int = 410
    drop: Drop | None = None
    stall_after: int | None = None  # stop sending after this many events (no timeout)
    end_after: float | None = None  # end cleanly after this many seconds (proxy, server)
    bookmark_every: float = 60.0
    coalesce: float = 0.0  # chance that events pending together share one chunk
    retry_after: int = 1


@dataclass(frozen=True)
class ListPlan:
    status: int | None = None  # 410, 429 or 500 instead of the page
    refused: bool = False  # httpx.ConnectError
    torn_at: float | None = None  # the body stops this fraction in (connection lost)
    stall: bool = False  # no answer until the client's read timeout
    retry_after: int = 1


class Faults:
    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate
        self.active = True
        # Refused connections before the first sync end the pod program by design (an
        # unreachable server is one error line): the runner sets this once synced.
        self.synced = False
        self.injected: dict[str, int] = {}  # fault kind -> count, for the verdict line

    def quiesce(self) -> None:
        self.active = False

    def count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def _hit(self) -> bool:
        return self.active and self.rng.random() < self.rate

    def latency(self) -> float:
        return self.rng.choice((0.0, 0.001, 0.01, 0.05, 0.2))

    def watch_plan(self) -> WatchPlan:
        rng = self.rng
        bookmark_every = rng.choice((1.0, 5.0, 30.0, 60.0))
        coalesce = rng.choice((0.0, 0.0, 0.5))
        gone_as_status = rng.random() < 0.3
        if not self._hit():
            return WatchPlan(
                bookmark_every=bookmark_every, coalesce=coalesce, gone_as_status=gone_as_status
            )
        kind = rng.choice(("status", "error_event", "drop", "drop", "drop", "stall", "end", "end"))
        self.count(f"watch_{kind}")
        plan = WatchPlan(
            bookmark_every=bookmark_every, coalesce=coalesce, gone_as_status=gone_as_status
        )
        if kind == "status":
            status = rng.choice((410, 429, 429, 500, 503))
            return replace(plan, status=status, retry_after=rng.choice((0, 1, 2, 5)))
        if kind == "error_event":
            return replace(
                plan, error_after=rng.randint(0, 20), error_code=rng.choice((410, 410, 500))
            )
        if kind == "drop":
            place = rng.choice(DROP_PLACES)
            frame = 0 if place == "head" else rng.randint(1, 25)
            return replace(plan, drop=Drop(frame, place, rng.random()))
        if kind == "stall":
            return replace(plan, stall_after=rng.randint(0, 20))
        return replace(plan, end_after=rng.choice((0.0, 0.5, 2.0, 30.0)))

    def list_plan(self, continuing: bool) -> ListPlan:
        rng = self.rng
        if not self._hit():
            return ListPlan()
        kind = rng.choice(("410", "429", "500", "refused", "torn", "torn", "stall"))
        if kind == "410" and not continuing and rng.random() < 0.8:
            kind = "429"  # a first page is a consistent read: 410 is rare there
        if kind == "refused" and not self.synced:
            kind = "torn"
        self.count(f"list_{kind}")
        if kind == "refused":
            return ListPlan(refused=True)
        if kind == "torn":
            return ListPlan(torn_at=rng.random())
        if kind == "stall":
            return ListPlan(stall=True)
        return ListPlan(status=int(kind), retry_after=rng.choice((0, 1, 3)))

    async def compactor(self, model: Model, every: float) -> None:
        """etcd compaction, now and then, to a little before the newest rv."""
        while self.active:
            await trio.sleep(self.rng.expovariate(1.0 / every))
            if self.active:
                self.count("compaction")
                model.compact(model.rv - self.rng.randint(0, 5))


class ScriptedFaults(Faults):
    """Faults named one request at a time (regression tests): the next watch gets the
    next of `watches`, the next list page the next of `lists`, then none."""

    def __init__(self, watches: list[WatchPlan] = (), lists: list[ListPlan] = ()) -> None:  # type: ignore[assignment]
        super().__init__(random.Random(0), 0.0)
        self.watches = list(watches)
        self.lists = list(lists)

    def latency(self) -> float:
        return 0.0

    def watch_plan(self) -> WatchPlan:
        return self.watches.pop(0) if self.watches else WatchPlan()

    def list_plan(self, continuing: bool) -> ListPlan:
        return self.lists.pop(0) if self.lists else ListPlan()
