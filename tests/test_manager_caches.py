"""What a reconcile reads: the controller's own caches (`controller.store`,
`controller.store_of`), a reconcile given after the controller is built, and the
warnings for caches that do not match what the controller is fed from (a lookup in
another namespace, a primary read without its selector, `-n` on a cluster-scoped
program). Without a server: nothing here runs an informer."""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from trio_controller import (
    CONFIGMAPS,
    NAMESPACES,
    RESOURCE_QUOTAS,
    SECRETS,
    Manager,
    TrioControllerError,
    load_config,
)
from trio_controller.runtime.flags import add_flags
from trio_controller.transport.client import Client

KUBECONFIG = (
    "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
    "users: [{name: u, user: {token: t}}]\n"
    "contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]\n"
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    async with Client(load_config(str(path))) as client:
        yield client


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_store_of_is_the_very_cache_owns_feeds_the_queue_from(client: Client) -> None:
    manager = Manager(client, namespace="default")
    controller = manager.controller(NAMESPACES, label_selector="team").owns(RESOURCE_QUOTAS)
    owned = [i for i in controller.informers if i.resource == RESOURCE_QUOTAS]
    assert controller.store_of(RESOURCE_QUOTAS) is owned[0].store
    # owns() of a cluster-scoped primary watches every namespace, whatever -n says.
    assert owned[0].key.path == "/api/v1/resourcequotas"
    assert manager.factory.informer(RESOURCE_QUOTAS).store is owned[0].store
    assert manager.factory.informer(RESOURCE_QUOTAS, namespace="default").store is not (
        owned[0].store
    )


async def test_store_of_the_primary_is_its_filtered_cache_not_the_factorys_default(
    client: Client,
) -> None:
    manager = Manager(client)
    controller = manager.controller(NAMESPACES, label_selector="team=a")
    assert controller.store_of(NAMESPACES) is controller.store
    assert controller.informers[0].key.label_selector == "team=a"
    # The factory keys informers on their selectors: no selector is another watch.
    assert manager.factory.informer(NAMESPACES).store is not controller.store


async def test_store_of_a_kind_the_controller_does_not_watch_says_what_to_call(
    client: Client,
) -> None:
    controller = Manager(client).controller(NAMESPACES)
    with pytest.raises(ValueError, match="does not watch configmaps: call owns"):
        controller.store_of(CONFIGMAPS)
    controller.watches(SECRETS, lambda s: [], namespace="a").watches(
        SECRETS, lambda s: [], namespace="b"
    )
    with pytest.raises(ValueError, match="through 2 informers"):
        controller.store_of(SECRETS)


async def test_a_reconcile_given_later_by_decorator_is_the_one_run(client: Client) -> None:
    manager = Manager(client)
    controller = manager.controller(NAMESPACES)
    namespaces = controller.store

    @controller.reconciler
    async def reconcile(key: str) -> None:
        namespaces.get(key)

    assert controller.reconcile is reconcile and controller._async
    with pytest.raises(TypeError, match="has a reconcile already"):
        controller.reconciler(reconcile)


async def test_a_controller_left_without_a_reconcile_fails_the_start_in_one_line(
    client: Client,
) -> None:
    manager = Manager(client)
    manager.controller(NAMESPACES, name="quota")
    with pytest.raises(TrioControllerError, match="quota controller has no reconcile"):
        await manager.run()


async def test_a_lookup_in_one_namespace_of_what_a_cluster_wide_owns_watches_is_warned(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The trap: the widget example's `factory.informer(CONFIGMAPS, namespace=...)` copied
    for a cluster-scoped primary reads `default` while owns() watches everywhere."""
    manager = Manager(client, namespace="default")
    quotas = manager.factory.informer(RESOURCE_QUOTAS, namespace=manager.namespace).store
    manager.controller(NAMESPACES, lambda key: quotas.get(key), name="quota").owns(RESOURCE_QUOTAS)
    manager._warn_about_caches()
    assert warnings(caplog) == [
        "The quota controller's queue is fed from resourcequotas in every namespace, but "
        "this manager also caches resourcequotas in namespace default, which feeds no "
        "controller: a reconcile reading that cache misses or sees other objects; read "
        "controller.store / controller.store_of(ResourceQuota)"
    ]


async def test_a_primary_read_without_the_controllers_label_selector_is_warned(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    manager = Manager(client)
    manager.factory.informer(NAMESPACES)
    manager.controller(NAMESPACES, lambda key: None, label_selector="team=a")
    manager._warn_about_caches()
    [line] = warnings(caplog)
    assert "fed from namespaces with labels team=a" in line
    assert "also caches namespaces, which feeds no controller" in line


async def test_lookups_of_the_controllers_own_caches_are_not_warned(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The widget example's shape: the lookup is the informer owns() uses."""
    manager = Manager(client, namespace="apps")
    manager.factory.informer(CONFIGMAPS, namespace=manager.namespace)
    manager.controller(SECRETS, lambda key: None).owns(CONFIGMAPS)
    manager._warn_about_caches()
    assert warnings(caplog) == []


@pytest.mark.parametrize(
    ("argv", "warned"),
    [(["-n", "team-a"], True), ([], False), (["-A"], False)],
)
async def test_dash_n_on_a_program_that_watches_only_cluster_wide_is_one_warning(
    client: Client, caplog: pytest.LogCaptureFixture, argv: list[str], warned: bool
) -> None:
    args = add_flags(argparse.ArgumentParser()).parse_args(argv)
    manager = Manager.from_args(client, args)
    manager.controller(NAMESPACES, lambda key: None).owns(RESOURCE_QUOTAS)
    manager._warn_about_caches()
    expected = [
        "-n team-a has no effect: this program watches only cluster-scoped kinds and every "
        "namespace (a cluster-scoped controller's owns() and watches() watch all "
        "namespaces unless given namespace=)"
    ]
    assert warnings(caplog) == (expected if warned else [])


async def test_dash_n_that_restricts_a_namespaced_controller_is_not_warned(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    args = add_flags(argparse.ArgumentParser()).parse_args(["-n", "team-a"])
    manager = Manager.from_args(client, args)
    manager.controller(CONFIGMAPS, lambda key: None)
    manager._warn_about_caches()
    assert warnings(caplog) == []


@pytest.mark.parametrize("late", [False, True])
async def test_a_sharded_managers_reconcile_is_wrapped_given_early_or_late(
    client: Client, late: bool
) -> None:
    """The shard skips keys not in the controller's own cache (or not its shard's),
    whether the reconcile comes with `manager.controller` or by decorator; the wrapper
    reads the controller's store, so no second informer is made for it."""
    from trio_controller.runtime.sharding import Shard, ShardOptions

    manager = Manager(client, shard=Shard(client, ShardOptions("widgets", "shard-a", "ops")))
    called: list[str] = []

    async def reconcile(key: str) -> None:
        called.append(key)

    if late:
        controller = manager.controller(CONFIGMAPS)
        controller.reconciler(reconcile)
    else:
        controller = manager.controller(CONFIGMAPS, reconcile)
    assert controller.reconcile is not reconcile and controller._async
    assert controller.reconcile is not None
    assert await controller.reconcile("ops/absent") is None  # type: ignore[misc]
    assert called == []
    assert manager.factory.informers == controller.informers
