"""Waiting in a test until the cluster shows something: `eventually`.

    from trio_controller.testing import eventually

    async def established() -> bool:
        crd = await Api(client, CUSTOM_RESOURCE_DEFINITIONS).get("widgets.example.com")
        return any(c["type"] == "Established" for c in crd["status"]["conditions"])

    await eventually(established, "the Widget CRD", within=30)

What a controller does shows up in the apiserver some time later; a test polls for it
with a deadline and fails with one line naming what it waited for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["eventually"]


async def eventually(
    check: Callable[[], Awaitable[Any]], what: str, within: float = 20.0, every: float = 0.1
) -> Any:
    """Await `check()` every `every` seconds until it returns something truthy; that
    value. `AssertionError("timed out after {within}s waiting for {what}")` when it has
    not within `within` seconds (an exception `check` raises goes through at once)."""
    with trio.move_on_after(within):
        while True:
            value = await check()
            if value:
                return value
            await trio.sleep(every)
    raise AssertionError(f"timed out after {within:g}s waiting for {what}")
