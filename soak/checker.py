"""The soak's verdict on what the controller printed, against the final state.

For every key the writers ever created:

- it exists at the end → the last line printed about it (across every controller run,
  in order) is `Sync/Add/Update for Pod <name>`;
- it was deleted → if anything was printed about it, the last line is
  `Pod <ns>/<name> does not exist anymore`; a Sync line with no delete line after it
  is a missed delete.

A line about a key no writer created, or a line of another shape, is unexpected.
Pod names are unique across the soak's namespaces (`<ns>-<n>`), since a Sync line
carries only the name.
"""

from __future__ import annotations

import bisect
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SYNC = re.compile(r"^Sync/Add/Update for Pod (?P<name>\S+)$")
GONE = re.compile(r"^Pod (?P<ns>[^/\s]+)/(?P<name>\S+) does not exist anymore$")


@dataclass
class KeyVerdict:
    key: str
    exists: bool
    last: str | None  # "sync", "gone" or None (never printed)


@dataclass
class Verdict:
    keys: int = 0
    lines: int = 0
    mismatches: list[KeyVerdict] = field(default_factory=list)
    missed_deletes: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    never_seen_deleted: int = 0  # created and deleted while no controller could see it

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.missed_deletes or self.unexpected)


def check_lines(runs: Sequence[Sequence[str]], final: Mapping[str, bool]) -> Verdict:
    """`runs`: each controller run's stdout lines, in run order. `final`: every key
    ("ns/name") a writer created, with whether it exists at the end."""
    by_name = {key.split("/", 1)[1]: key for key in final}
    last: dict[str, str] = {}
    last_sync: dict[str, int] = {}
    last_gone: dict[str, int] = {}
    verdict = Verdict(keys=len(final))
    position = 0
    for run in runs:
        for line in run:
            position += 1
            verdict.lines += 1
            if m := SYNC.match(line):
                key = by_name.get(m["name"])
                kind = "sync"
            elif m := GONE.match(line):
                key = f"{m['ns']}/{m['name']}"
                key = key if key in final else None
                kind = "gone"
            else:
                verdict.unexpected.append(line)
                continue
            if key is None:
                verdict.unexpected.append(line)
                continue
            last[key] = kind
            (last_sync if kind == "sync" else last_gone)[key] = position
    for key, exists in sorted(final.items()):
        seen = last.get(key)
        if exists and seen != "sync":
            verdict.mismatches.append(KeyVerdict(key, exists, seen))
        if not exists:
            if seen is None:
                verdict.never_seen_deleted += 1
            elif seen != "gone":
                verdict.mismatches.append(KeyVerdict(key, exists, seen))
            if key in last_sync and last_gone.get(key, -1) < last_sync[key]:
                verdict.missed_deletes.append(key)
    return verdict


def converged(runs: Sequence[Sequence[str]], final: Mapping[str, bool]) -> bool:
    return check_lines(runs, final).ok


# -- lag: from a write to the controller's next line about that key -----------------------


@dataclass(frozen=True)
class Lag:
    p50: float
    p99: float
    max: float
    unseen: int  # writes with no line about their key after them


def lag(writes: Iterable[tuple[float, str]], lines: Iterable[tuple[float, str]]) -> Lag | None:
    """`writes`: (time, key) when each write was acknowledged; `lines`: (time, line) of
    every controller line, in time order. A write's lag is the time to the first line
    about its key after it (the line may stand for a later write too: keys are
    de-duplicated). None when no write was seen."""
    times: dict[str, list[float]] = {}
    for at, line in lines:
        if (m := SYNC.match(line)) or (m := GONE.match(line)):
            name = m["name"]
        else:
            continue
        times.setdefault(name, []).append(at)
    lags: list[float] = []
    unseen = 0
    for at, key in writes:
        seen = times.get(key.split("/", 1)[1], [])
        i = bisect.bisect_left(seen, at)
        if i == len(seen):
            unseen += 1
        else:
            lags.append(seen[i] - at)
    if not lags:
        return None
    lags.sort()
    return Lag(
        lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))], lags[-1], unseen
    )


# -- resources: "flat" -------------------------------------------------------------------


@dataclass(frozen=True)
class Flatness:
    first: float  # median of the first quarter (after warm-up)
    last: float  # median of the last quarter
    flat: bool
    samples: int


def flatness(
    samples: Iterable[float], *, warmup: int, ratio: float, slack: float, min_samples: int = 20
) -> Flatness | None:
    """The last quarter's median is within `first * ratio + slack` of the first quarter's
    (after dropping `warmup` samples). None when there are too few samples to judge."""
    values = list(samples)[warmup:]
    if len(values) < min_samples:
        return None
    quarter = max(1, len(values) // 4)
    first = statistics.median(values[:quarter])
    last = statistics.median(values[-quarter:])
    return Flatness(first, last, last <= first * ratio + slack, len(values))
