"""Bugs the simulation (tests/sim/) found in code owned elsewhere, one scenario each,
replayed on the model apiserver with the faults named request by request.

Fault injection the real apiserver cannot do on cue (a connection lost in the middle of
a list page or a streaming list). Each test failed before its fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing
from sim.faults import Drop, ListPlan, ScriptedFaults, WatchPlan
from sim.model import Model
from sim.run import make_reflector
from sim.wire import ModelServer

from trio_controller._native import Store
from trio_controller.config import ClusterConfig
from trio_controller.runtime.workqueue import WorkQueue
from trio_controller.transport.client import Client


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def sync_with_product_defaults(
    pods: int,
    *,
    streaming_list: bool,
    watches: Sequence[WatchPlan] = (),
    lists: Sequence[ListPlan] = (),
) -> tuple[Model, Store]:
    """Run a reflector as the pod program builds it (fail fast before the first sync)
    against `pods` pods and the scripted faults, until its cache is synced."""
    model = Model()
    for i in range(pods):
        model.create(f"pod-{i}")
    faults = ScriptedFaults(list(watches), list(lists))
    store = Store()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            server = ModelServer(model, faults, nursery)
            config = ClusterConfig("http://sim.invalid")
            async with Client(
                config, transport=server.transport(), watch_connector=server.connect
            ) as client:
                reflector = make_reflector(
                    client, store, WorkQueue(), streaming_list=streaming_list, page_size=1
                )
                nursery.start_soon(reflector.run)
                await reflector.synced.wait()
                nursery.cancel_scope.cancel()
    return model, store


# Found by sim seeds 33, 42 and 44 with fail_fast_before_sync=True: every ConnectionFailed
# before the first sync was fatal, also a connection established and then lost
# mid-response (an apiserver restart), so the pod program exited where client-go
# retries. Fixed by ConnectionLost (errors.py), which the reflector retries.


async def test_a_list_page_cut_short_before_the_first_sync_is_retried() -> None:
    model, store = await sync_with_product_defaults(
        3, streaming_list=False, lists=[ListPlan(), ListPlan(torn_at=0.5)]
    )
    assert sorted(store.list_keys()) == sorted(model.objects)


async def test_a_streaming_list_dropped_mid_chunk_before_the_first_sync_is_retried() -> None:
    model, store = await sync_with_product_defaults(
        5, streaming_list=True, watches=[WatchPlan(drop=Drop(3, "data", 0.5))]
    )
    assert sorted(store.list_keys()) == sorted(model.objects)


async def test_a_watch_closed_mid_head_before_the_first_sync_is_retried() -> None:
    model, store = await sync_with_product_defaults(
        2, streaming_list=True, watches=[WatchPlan(drop=Drop(0, "head", 0.4))]
    )
    assert sorted(store.list_keys()) == sorted(model.objects)


async def test_the_same_syncs_succeed_without_the_faults() -> None:
    """The scenarios above fail only by the fault: without it each one syncs."""
    for streaming_list in (False, True):
        model, store = await sync_with_product_defaults(5, streaming_list=streaming_list)
        assert sorted(store.list_keys()) == sorted(model.objects)
