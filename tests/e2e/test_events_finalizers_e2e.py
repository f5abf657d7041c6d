"""Events and finalizers on the real apiserver: the recorder's Events are listed with
the fields it wrote and a series after repeats; the finalizer helper holds a ConfigMap
until cleanup ran (testenv runs no garbage collector, so a deleted object with a
finalizer stays, with its deletionTimestamp, until the finalizer is removed)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from trio_controller import errors, load_config
from trio_controller.api.resource import CONFIGMAPS, EVENTS
from trio_controller.api.verbs import Api
from trio_controller.runtime.events import NORMAL, WARNING, EventRecorder
from trio_controller.runtime.finalizers import finalizer
from trio_controller.testing import EnvInfo
from trio_controller.transport.client import Client

OURS = "example.com/cleanup"
OTHER = "other.example.com/keep"
FIRST = "first.example.com/keep"
MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
async def client(envtest: EnvInfo) -> AsyncIterator[Client]:
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        yield client


async def new_configmap(client: Client, namespace: str) -> dict[str, Any]:
    name = f"cm-{uuid.uuid4().hex[:8]}"
    api = Api(client, CONFIGMAPS, namespace)
    return await api.create({"metadata": {"name": name}, "data": {"k": "v"}})


async def events_about(client: Client, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = await Api(client, EVENTS, namespace).list()
    return [e for e in listed if e["regarding"]["name"] == name]


async def wait_for_events(
    client: Client, namespace: str, name: str, done: Any, seconds: float = 15.0
) -> list[dict[str, Any]]:
    with trio.fail_after(seconds):
        while True:
            found = await events_about(client, namespace, name)
            if done(found):
                return found
            await trio.sleep(0.2)


async def test_events_are_listed_with_the_fields_written_and_repeats_as_a_series(
    client: Client, namespace: str
) -> None:
    cm = await new_configmap(client, namespace)
    name = cm["metadata"]["name"]
    recorder = EventRecorder(
        client, "example.com/e2e-controller", reporting_instance="e2e-1", refresh_interval=0.5
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        for _ in range(3):
            recorder.event(cm, WARNING, "FailedSync", "bucket is gone", action="Sync")
        recorder.event(cm, NORMAL, "Synced", "all good", action="Sync")
        found = await wait_for_events(
            client,
            namespace,
            name,
            lambda es: len(es) == 2 and any((e.get("series") or {}).get("count") == 3 for e in es),
        )
        nursery.cancel_scope.cancel()
    (failed,) = [e for e in found if e["reason"] == "FailedSync"]
    (synced,) = [e for e in found if e["reason"] == "Synced"]
    assert failed["regarding"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "namespace": namespace,
        "name": name,
        "uid": cm["metadata"]["uid"],
        "resourceVersion": cm["metadata"]["resourceVersion"],
    }
    assert failed["type"] == "Warning" and failed["note"] == "bucket is gone"
    assert failed["action"] == "Sync"
    assert failed["reportingController"] == "example.com/e2e-controller"
    assert failed["reportingInstance"] == "e2e-1"
    assert MICRO_TIME.fullmatch(failed["eventTime"])
    assert failed["series"]["count"] == 3
    assert MICRO_TIME.fullmatch(failed["series"]["lastObservedTime"])
    assert failed["series"]["lastObservedTime"] >= failed["eventTime"]
    assert failed["metadata"]["name"].startswith(f"{name}.")
    assert synced["type"] == "Normal" and "series" not in synced


async def test_an_event_the_apiserver_refuses_is_logged_and_later_ones_still_go_out(
    client: Client, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    cm = await new_configmap(client, namespace)
    elsewhere = {**cm, "metadata": {**cm["metadata"], "namespace": f"gone-{uuid.uuid4().hex[:6]}"}}
    recorder = EventRecorder(client, "example.com/e2e-controller")
    with caplog.at_level(logging.WARNING, logger="trio_controller.runtime.events"):
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            recorder.event(elsewhere, NORMAL, "Synced", "nowhere", action="Sync")
            recorder.event(cm, NORMAL, "Synced", "here", action="Sync")
            (event,) = await wait_for_events(client, namespace, cm["metadata"]["name"], len)
            nursery.cancel_scope.cancel()
    assert event["note"] == "here"
    assert "404" in caplog.text and "will not retry" in caplog.text


async def test_a_configmap_is_held_by_the_finalizer_until_cleanup_ran(
    client: Client, namespace: str
) -> None:
    api = Api(client, CONFIGMAPS, namespace)
    cm = await new_configmap(client, namespace)
    name = cm["metadata"]["name"]
    ran: list[str] = []

    async def apply(obj: dict[str, Any]) -> str:
        ran.append("apply")
        assert OURS in obj["metadata"]["finalizers"]
        return "applied"

    async def cleanup(obj: dict[str, Any]) -> str:
        ran.append("cleanup")
        assert obj["metadata"]["deletionTimestamp"]
        return "cleaned"

    assert await finalizer(client, CONFIGMAPS, cm, OURS, apply, cleanup) == "applied"
    assert (await api.get(name))["metadata"]["finalizers"] == [OURS]
    await api.delete(name)
    held = await api.get(name)  # no garbage collector, and our finalizer holds it
    assert held["metadata"]["deletionTimestamp"]
    assert await finalizer(client, CONFIGMAPS, held, OURS, apply, cleanup) == "cleaned"
    assert ran == ["apply", "cleanup"]
    with pytest.raises(errors.NotFound):
        await api.get(name)


async def test_only_our_finalizer_is_removed_and_stale_reads_conflict_instead_of_clobbering(
    client: Client, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_controller.runtime.finalizers")
    api = Api(client, CONFIGMAPS, namespace)
    cm = await new_configmap(client, namespace)
    name = cm["metadata"]["name"]

    async def nothing(obj: dict[str, Any]) -> dict[str, Any]:
        return obj

    # Other writers add theirs after our read: ours goes next to them (409, re-read).
    await api.patch(name, {"metadata": {"finalizers": [FIRST, OTHER]}})
    applied = await finalizer(client, CONFIGMAPS, cm, OURS, nothing, nothing)
    assert applied is not None and applied["metadata"]["finalizers"] == [FIRST, OTHER, OURS]
    assert re.search(r"adding finalizer .*: 409 Conflict", caplog.text)

    await api.delete(name)
    held = await api.get(name)
    assert held["metadata"]["finalizers"] == [FIRST, OTHER, OURS]
    # The first goes after our read: our index moved (the `test` at 2 fails: 422, re-read).
    await api.patch(name, [{"op": "remove", "path": "/metadata/finalizers/0"}], type="json")
    cleaned = await finalizer(client, CONFIGMAPS, held, OURS, nothing, nothing)
    assert cleaned is not None
    assert re.search(r"removing finalizer .*: 422 Invalid", caplog.text)
    assert (await api.get(name))["metadata"]["finalizers"] == [OTHER]  # still held by it

    # Deleting and without our finalizer: nothing runs.
    ran: list[str] = []

    async def record(obj: dict[str, Any]) -> None:
        ran.append("ran")

    assert await finalizer(client, CONFIGMAPS, await api.get(name), OURS, record, record) is None
    assert ran == []
    await api.patch(name, [{"op": "remove", "path": "/metadata/finalizers/0"}], type="json")
    with pytest.raises(errors.NotFound):
        await api.get(name)
