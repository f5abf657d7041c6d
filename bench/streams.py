"""The benchmark inputs, pre-serialized: list pages and watch streams of realistic pods.

Pods come from `pods.py` (about 4 KB each, managedFields included), serialized once per
index with a resourceVersion placeholder and cached under ~/.cache/trio-controller/bench/.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import orjson
from pods import pod

CACHE = Path(os.environ.get("TRIO_CONTROLLER_CACHE", Path.home() / ".cache/trio-controller"))
DATA = CACHE / "bench" / "data"
LIST_RV = 1_000_000
SENTINEL = "bench-sentinel"
_PLACEHOLDER = b'"resourceVersion":"0"'
_FORMAT = 1


def templates(count: int) -> list[bytes]:
    """Pod items 0..count-1 as list items (no kind/apiVersion), resourceVersion "0"."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"pods-v{_FORMAT}-{count}.bin"
    if path.exists():
        return path.read_bytes().split(b"\n")
    items = []
    for i in range(count):
        p = pod(i, resource_version=0)
        del p["kind"], p["apiVersion"]
        items.append(orjson.dumps(p))
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"\n".join(items))
    tmp.replace(path)
    return items


def item(template: bytes, rv: int) -> bytes:
    return template.replace(_PLACEHOLDER, b'"resourceVersion":"%d"' % rv, 1)


def pod_name(template: bytes) -> str:
    return orjson.loads(template)["metadata"]["name"]


def _event(kind: str, template: bytes, rv: int) -> bytes:
    obj = b'{"kind":"Pod","apiVersion":"v1",' + item(template, rv)[1:]
    return b'{"type":"%s","object":%s}\n' % (kind.encode(), obj)


def _sentinel(rv: int) -> bytes:
    p = pod(0, resource_version=rv)
    p["metadata"]["name"] = SENTINEL
    return orjson.dumps({"type": "ADDED", "object": p}) + b"\n"


def _bookmark(rv: int) -> bytes:
    obj = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}}
    return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


@dataclass
class Scenario:
    """What the stream server serves: `pods` listed, then `events` watch lines."""

    list_items: list[bytes]
    events: list[bytes]  # one watch line each, the sentinel ADDED last (then a bookmark)
    names: list[str]  # the pod name of each event (latency streams only; else empty)


def churn(pods: int, events: int, *, seed: int = 1) -> Scenario:
    """List `pods`, then `events` watch events: 20% ADDED (new pods), 60% MODIFIED and
    20% DELETED (of live pods, chosen at random), then the sentinel pod's ADDED."""
    adds = events // 5 + 1
    tpl = templates(pods + adds)
    rng = random.Random(seed)
    live = list(range(pods))
    next_new = pods
    rv = LIST_RV
    out = []
    for i in range(events):
        rv += 1
        r = i % 10
        if r < 2 or not live:
            live.append(next_new)
            out.append(_event("ADDED", tpl[next_new], rv))
            next_new += 1
        elif r < 8:
            out.append(_event("MODIFIED", tpl[live[rng.randrange(len(live))]], rv))
        else:
            j = rng.randrange(len(live))
            live[j], live[-1] = live[-1], live[j]
            out.append(_event("DELETED", tpl[live.pop()], rv))
    out.append(_sentinel(rv + 1))
    out.append(_bookmark(rv + 1))
    return Scenario([item(t, LIST_RV) for t in tpl[:pods]], out, [])


def adds(pods: int, events: int) -> Scenario:
    """List `pods`, then `events` ADDED events of distinct new pods (for latency)."""
    tpl = templates(pods + events)
    out = [_event("ADDED", tpl[pods + i], LIST_RV + 1 + i) for i in range(events)]
    names = [pod_name(t) for t in tpl[pods : pods + events]]
    out.append(_sentinel(LIST_RV + events + 1))
    names.append(SENTINEL)
    return Scenario([item(t, LIST_RV) for t in tpl[:pods]], out, names)
