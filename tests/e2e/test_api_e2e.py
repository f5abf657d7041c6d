"""Discovery and every Api verb against a real kube-apiserver (testenv): the Widget CRD
(widgets.example.com, with a status subresource), ConfigMaps and Pods, typed errors.

Objects live in a fresh namespace per test; the Widget CRD is made once for the session
(and deleted at its end if this module made it); the CRD of the re-query test has a
unique group and is deleted by that test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import trio

from trio_controller.api import (
    CONFIGMAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    Api,
    Discovery,
    Resource,
    ResourceNotFound,
)
from trio_controller.api.discovery import AGGREGATED_DISCOVERY
from trio_controller.config import load_config
from trio_controller.errors import ApiError, Conflict, NotFound
from trio_controller.testing import EnvInfo, pod_manifest
from trio_controller.transport.client import Client

WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd_manifest(group: str, plural: str, kind: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 0},
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "ready": {"type": "boolean"},
                    "observedReplicas": {"type": "integer"},
                },
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="session")
def widget_crd(envtest: EnvInfo) -> Iterator[None]:
    """widgets.example.com, Established and in discovery; deleted at the end if made here."""
    with httpx.Client(
        base_url=envtest.server, verify=envtest.ssl_context(client_cert=True), timeout=10
    ) as http:
        made = http.post(CRDS, json=crd_manifest("example.com", "widgets", "Widget"))
        assert made.status_code in (201, 409), made.text
        deadline = time.monotonic() + 30
        while not (
            _established(http.get(f"{CRDS}/widgets.example.com").json())
            and http.get("/apis/example.com/v1").status_code == 200
        ):
            assert time.monotonic() < deadline, "widgets.example.com was not established"
            time.sleep(0.05)
        yield
        if made.status_code == 201:
            http.delete(f"{CRDS}/widgets.example.com")


@pytest.fixture
async def client(envtest: EnvInfo) -> AsyncIterator[Client]:
    async with Client(load_config(envtest.admin_kubeconfig, environ={})) as client:
        yield client


def widget(name: str, message: str = "hello", replicas: int = 1, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"message": message, "replicas": replicas},
    }


# -- discovery ----------------------------------------------------------------------------


@pytest.mark.usefixtures("widget_crd")
async def test_discovery_resolves_core_group_and_custom_kinds(client: Client) -> None:
    discovery = Discovery(client)
    assert await discovery.resource_for("v1", "Pod") == PODS
    assert await discovery.resource_for("apps/v1", "Deployment") == DEPLOYMENTS
    assert await discovery.resource_for("v1", "Namespace") == NAMESPACES
    assert await discovery.resource_for("example.com/v1", "Widget") == WIDGETS
    assert await discovery.resource_for_plural("example.com/v1", "widgets") == WIDGETS
    crds = await discovery.resource_for("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert crds == CUSTOM_RESOURCE_DEFINITIONS
    assert discovery.aggregated is True  # v1.37 offers aggregated discovery
    with pytest.raises(ResourceNotFound, match=r"'Sprocket' in example\.com/v1"):
        await discovery.resource_for("example.com/v1", "Sprocket")


async def test_a_crd_created_after_the_cache_was_filled_is_found_on_re_query(
    client: Client,
) -> None:
    group = f"t{uuid.uuid4().hex[:10]}.example.com"
    discovery = Discovery(client)
    with pytest.raises(ResourceNotFound):
        await discovery.resource_for(f"{group}/v1", "Gadget")  # the cache is filled now
    crds = Api(client, CUSTOM_RESOURCE_DEFINITIONS)
    await crds.create(crd_manifest(group, "gadgets", "Gadget"))
    try:
        with trio.fail_after(30):
            # Wait (raw, outside Discovery) until the server's aggregated discovery has it.
            while True:
                served = await client.request_json("GET", "/apis", accept=AGGREGATED_DISCOVERY)
                if any(item["metadata"]["name"] == group for item in served["items"]):
                    break
                await trio.sleep(0.05)
        requests: list[str] = []
        client.add_request_hook(lambda method, path, status, seconds: requests.append(path))
        gadgets = await discovery.resource_for(f"{group}/v1", "Gadget")
        assert gadgets == Resource(group, "v1", "gadgets", "Gadget")
        assert requests == ["/api", "/apis"]  # one re-query
    finally:
        await crds.delete(f"gadgets.{group}")


# -- reads and writes on a custom resource ------------------------------------------------


@pytest.mark.usefixtures("widget_crd")
async def test_widgets_are_created_read_and_listed_with_selectors_and_pages(
    client: Client, namespace: str
) -> None:
    widgets = Api(client, WIDGETS, namespace)
    for name, tier in [("w1", "a"), ("w2", "a"), ("w3", "b")]:
        created = await widgets.create(widget(name, tier=tier))
        assert created["metadata"]["namespace"] == namespace
        assert created["spec"] == {"message": "hello", "replicas": 1}
    with pytest.raises(Conflict, match="already exists"):
        await widgets.create(widget("w1"))
    got = await widgets.get("w2")
    assert got["kind"] == "Widget" and got["metadata"]["labels"] == {"tier": "a"}
    with pytest.raises(NotFound):
        await widgets.get("nope")

    lists: list[str] = []
    client.add_request_hook(lambda method, path, status, seconds: lists.append(method))
    listed = await widgets.list(label_selector="tier=a", limit=1)
    assert sorted(o["metadata"]["name"] for o in listed) == ["w1", "w2"]
    assert {(o["apiVersion"], o["kind"]) for o in listed} == {("example.com/v1", "Widget")}
    assert int(listed.resource_version) >= int(got["metadata"]["resourceVersion"])
    assert len(lists) >= 2  # one page per item
    by_field = await widgets.list(field_selector="metadata.name=w3")
    assert [o["metadata"]["name"] for o in by_field] == ["w3"]
    everywhere = await Api(client, WIDGETS).list(label_selector="tier=b")
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everywhere] == [
        (namespace, "w3")
    ]


@pytest.mark.usefixtures("widget_crd")
async def test_replace_with_a_stale_resource_version_is_a_conflict(
    client: Client, namespace: str
) -> None:
    widgets = Api(client, WIDGETS, namespace)
    first = await widgets.create(widget("w", replicas=1))
    first["spec"]["replicas"] = 2
    second = await widgets.replace(first)
    assert second["spec"]["replicas"] == 2
    assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    first["spec"]["replicas"] = 3  # still carries the old resourceVersion
    with pytest.raises(Conflict, match="has been modified"):
        await widgets.replace(first)
    assert (await widgets.get("w"))["spec"]["replicas"] == 2


@pytest.mark.usefixtures("widget_crd")
async def test_delete_checks_preconditions(client: Client, namespace: str) -> None:
    widgets = Api(client, WIDGETS, namespace)
    made = await widgets.create(widget("w"))
    uid, rv = made["metadata"]["uid"], made["metadata"]["resourceVersion"]
    with pytest.raises(Conflict, match="UID"):
        await widgets.delete("w", preconditions={"uid": str(uuid.uuid4())})
    with pytest.raises(Conflict, match="ResourceVersion"):
        await widgets.delete("w", preconditions={"uid": uid, "resourceVersion": "1"})
    await widgets.delete("w", preconditions={"uid": uid, "resourceVersion": rv})
    with pytest.raises(NotFound):
        await widgets.get("w")


@pytest.mark.parametrize(
    ("policy", "finalizer"), [("Foreground", "foregroundDeletion"), ("Orphan", "orphan")]
)
async def test_delete_sends_the_propagation_policy(
    client: Client, namespace: str, policy: Any, finalizer: str
) -> None:
    # No garbage collector runs here: the policy shows as the finalizer the apiserver adds.
    configmaps = Api(client, CONFIGMAPS, namespace)
    await configmaps.create({"metadata": {"name": "c"}})
    answer = await configmaps.delete("c", propagation_policy=policy, grace_period_seconds=0)
    assert answer["metadata"]["finalizers"] == [finalizer]
    assert "deletionTimestamp" in answer["metadata"]
    await configmaps.patch("c", [{"op": "remove", "path": "/metadata/finalizers"}], type="json")
    with pytest.raises(NotFound):
        await configmaps.get("c")


async def test_background_deletion_removes_the_object_at_once(
    client: Client, namespace: str
) -> None:
    configmaps = Api(client, CONFIGMAPS, namespace)
    await configmaps.create({"metadata": {"name": "c"}})
    await configmaps.delete("c", propagation_policy="Background")
    with pytest.raises(NotFound):
        await configmaps.get("c")


# -- patches ------------------------------------------------------------------------------


async def test_merge_json_and_strategic_patches_on_a_configmap(
    client: Client, namespace: str
) -> None:
    configmaps = Api(client, CONFIGMAPS, namespace)
    await configmaps.create({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}})
    merged = await configmaps.patch("c", {"data": {"a": None, "c": "3"}})
    assert merged["data"] == {"b": "2", "c": "3"}
    ops = [
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "x"},
    ]
    assert (await configmaps.patch("c", ops, type="json"))["data"] == {"b": "x", "c": "3"}
    with pytest.raises(ApiError) as failed:  # the test op fails: nothing is changed
        await configmaps.patch("c", [{"op": "test", "path": "/data/b", "value": "2"}], type="json")
    assert failed.value.status == 422
    strategic = await configmaps.patch("c", {"data": {"d": "4"}}, type="strategic")
    assert strategic["data"] == {"b": "x", "c": "3", "d": "4"}


async def test_a_strategic_patch_merges_pod_containers_by_name(
    client: Client, namespace: str
) -> None:
    pods = Api(client, PODS, namespace)
    manifest = pod_manifest("p")
    manifest["spec"]["containers"].append({"name": "side", "image": "registry.k8s.io/pause:3.9"})
    await pods.create(manifest)
    patch = {"spec": {"containers": [{"name": "side", "image": "registry.k8s.io/pause:3.10"}]}}
    patched = await pods.patch("p", patch, type="strategic")
    # A merge patch would have replaced the list; strategic merge keeps "main".
    assert [(c["name"], c["image"]) for c in patched["spec"]["containers"]] == [
        ("main", "registry.k8s.io/pause:3.10"),
        ("side", "registry.k8s.io/pause:3.10"),
    ]


@pytest.mark.usefixtures("widget_crd")
async def test_custom_resources_take_merge_and_json_patches_but_not_strategic(
    client: Client, namespace: str
) -> None:
    widgets = Api(client, WIDGETS, namespace)
    await widgets.create(widget("w", message="one"))
    assert (await widgets.patch("w", {"spec": {"message": "two"}}))["spec"]["message"] == "two"
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 5}]
    assert (await widgets.patch("w", ops, type="json"))["spec"]["replicas"] == 5
    with pytest.raises(ValueError, match="custom resource"):
        await widgets.patch("w", {"spec": {"message": "three"}}, type="strategic")
    # What the apiserver itself says to a strategic merge patch on a custom resource:
    path = WIDGETS.path(namespace, "w")
    with pytest.raises(ApiError) as refused:
        await client.request_json(
            "PATCH", path, {"spec": {}}, content_type="application/strategic-merge-patch+json"
        )
    assert refused.value.status == 415


# -- server-side apply --------------------------------------------------------------------


@pytest.mark.usefixtures("widget_crd")
async def test_server_side_apply_conflicts_between_managers_unless_forced(
    client: Client, namespace: str
) -> None:
    widgets = Api(client, WIDGETS, namespace)
    first = await widgets.apply(
        {"metadata": {"name": "w"}, "spec": {"message": "mine"}}, field_manager="alice"
    )
    assert first["spec"] == {"message": "mine"} and first["kind"] == "Widget"
    # The same manager may change its own fields; another one may add fields of its own.
    await widgets.apply(
        {"metadata": {"name": "w"}, "spec": {"message": "mine, again"}}, field_manager="alice"
    )
    await widgets.apply({"metadata": {"name": "w"}, "spec": {"replicas": 2}}, field_manager="bob")
    with pytest.raises(Conflict, match="conflict"):
        await widgets.apply(
            {"metadata": {"name": "w"}, "spec": {"message": "bob's"}}, field_manager="bob"
        )
    forced = await widgets.apply(
        {"metadata": {"name": "w"}, "spec": {"message": "bob's", "replicas": 2}},
        field_manager="bob",
        force=True,
    )
    assert forced["spec"] == {"message": "bob's", "replicas": 2}
    owners = {
        entry["manager"]: entry["fieldsV1"].get("f:spec", {})
        for entry in forced["metadata"]["managedFields"]
    }
    assert "f:message" in owners["bob"] and "f:message" not in owners.get("alice", {})


# -- the status subresource ---------------------------------------------------------------


@pytest.mark.usefixtures("widget_crd")
async def test_the_status_subresource_writes_status_only(client: Client, namespace: str) -> None:
    widgets = Api(client, WIDGETS, namespace)
    made = await widgets.create({**widget("w"), "status": {"ready": True}})
    assert "status" not in made  # the main resource ignores status
    current = await widgets.get_status("w")
    current["status"] = {"ready": False, "observedReplicas": 1}
    current["spec"]["message"] = "ignored"
    replaced = await widgets.replace_status(current)
    assert replaced["status"] == {"ready": False, "observedReplicas": 1}
    assert replaced["spec"]["message"] == "hello"  # the status endpoint ignores spec
    patched = await widgets.patch_status("w", {"status": {"ready": True}})
    assert patched["status"] == {"ready": True, "observedReplicas": 1}
    # observedReplicas belongs to the manager of the PUT above (named from our User-Agent).
    take = {"metadata": {"name": "w"}, "status": {"observedReplicas": 3}}
    with pytest.raises(Conflict, match=r"\.status\.observedReplicas"):
        await widgets.apply_status(take, field_manager="op")
    applied = await widgets.apply_status(take, field_manager="op", force=True)
    assert applied["status"]["observedReplicas"] == 3
    assert (await widgets.get("w"))["status"] == {"ready": True, "observedReplicas": 3}
    # Writes of the main resource keep the status.
    spec_only = await widgets.patch("w", {"spec": {"replicas": 4}, "status": {"ready": False}})
    assert spec_only["status"]["ready"] is True


async def test_cluster_scoped_resources_have_no_namespace_in_their_paths(client: Client) -> None:
    namespaces = Api(client, NAMESPACES)
    assert (await namespaces.get("kube-system"))["metadata"]["name"] == "kube-system"
    names = {o["metadata"]["name"] for o in await namespaces.list(limit=2)}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
