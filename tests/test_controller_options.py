"""`ControllerOptions`: how a controller's workers run, one frozen value given to
`Controller(...)`, `Controller.over(...)` and `manager.controller(...)`; what the
controller watches stays in their own arguments."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from trio_controller import (
    NAMESPACES,
    Controller,
    ControllerOptions,
    InformerOptions,
    Manager,
)
from trio_controller.config import ClusterConfig
from trio_controller.transport.client import Client


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(ClusterConfig(server="https://127.0.0.1:1")) as client:
        yield client


async def test_a_managers_controller_runs_with_the_managers_workers_and_sync_timeout(
    client: Client,
) -> None:
    manager = Manager(client, workers=3, cache_sync_timeout=None)
    controller = manager.controller(NAMESPACES, lambda key: None)
    assert controller.options == ControllerOptions(workers=3, cache_sync_timeout=None)


async def test_options_given_to_a_managers_controller_are_used_whole(client: Client) -> None:
    manager = Manager(client, workers=3)
    options = ControllerOptions(threaded=True, reconcile_timeout=5.0)
    controller = manager.controller(NAMESPACES, lambda key: None, name="ns", options=options)
    assert controller.options is options
    assert controller.options.workers == 1  # the value's own, not the manager's
    assert controller.name == "ns"


async def test_informer_options_go_to_the_primary_informer_and_selectors_override_them(
    client: Client,
) -> None:
    controller = Controller(
        client,
        NAMESPACES,
        lambda key: None,
        label_selector="team=a",
        informer_options=InformerOptions(label_selector="team=b", streaming_list=False),
    )
    assert controller.informer is not None
    assert controller.informer.options.streaming_list is False
    assert controller.informer.options.label_selector == "team=a"
    assert controller.options == ControllerOptions()


async def test_informer_options_given_as_the_controllers_options_say_where_they_go(
    client: Client,
) -> None:
    with pytest.raises(TypeError, match="an InformerOptions goes in informer_options="):
        Controller(client, NAMESPACES, options=InformerOptions())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch": 0}, "batch must be 1 or more, not 0"),
        ({"reconcile_timeout": 0}, "reconcile_timeout must be a positive number"),
        ({"own_writes_timeout": -1.0}, "own_writes_timeout must be >= 0 seconds"),
    ],
)
def test_impossible_options_are_refused_when_made(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ControllerOptions(**changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        ControllerOptions().replace(**changes)


def test_options_are_frozen_and_replace_makes_a_copy_where_none_is_a_value() -> None:
    options = ControllerOptions(workers=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.workers = 2  # type: ignore[misc]
    off = options.replace(cache_sync_timeout=None)
    assert (off.workers, off.cache_sync_timeout) == (4, None)
    assert options.cache_sync_timeout == 120.0
