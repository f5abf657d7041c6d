"""Reading a watch stream in tests without leaving httpx's async generators to the GC.

httpx 0.28 streams through several nested async generators. Leaving an ``async for``
early abandons the inner ones, and Trio warns when the GC finds them (an error under
``filterwarnings = error``). Closing the response first and then letting the iteration
fail ends every generator in the chain at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

WatchEvent = dict[str, Any]


async def read_events_until(
    response: httpx.Response, stop: Callable[[WatchEvent], bool]
) -> list[WatchEvent]:
    """Events of a streaming watch `response`, up to and including the first one for which
    `stop(event)` is true; the response is closed afterwards. If the server ends the
    stream first, returns what came."""
    events: list[WatchEvent] = []
    done = False
    try:
        async for line in response.aiter_lines():
            if done or not line:
                continue
            event: WatchEvent = json.loads(line)
            events.append(event)
            if stop(event):
                done = True
                await response.aclose()
    except (httpx.ReadError, httpx.StreamClosed, httpx.RemoteProtocolError):
        if not done:
            raise
    return events


def about(name: str, event_type: str | None = None) -> Callable[[WatchEvent], bool]:
    """A `stop` predicate: an event about object `name` (of `event_type`, if given)."""

    def matches(event: WatchEvent) -> bool:
        if event.get("object", {}).get("metadata", {}).get("name") != name:
            return False
        return event_type is None or event["type"] == event_type

    return matches
