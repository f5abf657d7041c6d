"""Api verbs: the method, path, content type, query and body each sends; pagination.

The apiserver here is tests/streamserver.py recording requests (and, for the expired
continue token, a 410 the real apiserver gives only after its compaction, not on cue).
Behaviour against Kubernetes is in tests/e2e/test_api_e2e.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from streamserver import Reply, Request, StreamServer, open_stream_server

from trio_controller.api import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, Api, Resource
from trio_controller.config import ClusterConfig
from trio_controller.errors import Conflict, Gone
from trio_controller.transport.client import Client

WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
CM = "/api/v1/namespaces/ns/configmaps"


@asynccontextmanager
async def serving(*replies: Reply) -> AsyncIterator[tuple[StreamServer, Client]]:
    async with (
        open_stream_server(*replies) as server,
        Client(ClusterConfig(server=server.url)) as client,
    ):
        yield server, client


def ok(obj: Any = None) -> Reply:
    return Reply.json(obj if obj is not None else {"kind": "ConfigMap", "metadata": {}})


def body(request: Request) -> Any:
    return orjson.loads(request.body)


async def test_get_reads_one_object_of_the_namespace_or_of_the_cluster() -> None:
    async with serving(ok({"metadata": {"name": "a"}}), ok()) as (server, client):
        assert (await Api(client, CONFIGMAPS, "ns").get("a"))["metadata"]["name"] == "a"
        await Api(client, NAMESPACES).get("kube-system")
    first, second = server.requests
    assert (first.method, first.target) == ("GET", f"{CM}/a")
    assert (second.method, second.target) == ("GET", "/api/v1/namespaces/kube-system")


async def test_list_follows_continue_tokens_and_joins_the_pages() -> None:
    pages = [
        {"metadata": {"continue": "t1", "resourceVersion": "10"}, "items": [{"metadata": {}}]},
        {"metadata": {"continue": "t2", "resourceVersion": "10"}, "items": [{"metadata": {}}]},
        {"metadata": {"resourceVersion": "10"}, "items": [{"kind": "Kept", "metadata": {}}]},
    ]
    async with serving(*map(Reply.json, pages)) as (server, client):
        listed = await Api(client, WIDGETS, "ns").list(
            label_selector="app=a", field_selector="metadata.name!=b", limit=1
        )
    assert listed.resource_version == "10" and len(listed) == 3
    # List items come without apiVersion and kind; they are filled in (a set one is kept).
    assert [(o["apiVersion"], o["kind"]) for o in listed] == [
        ("example.com/v1", "Widget"),
        ("example.com/v1", "Widget"),
        ("example.com/v1", "Kept"),
    ]
    selectors = {"labelSelector": ["app=a"], "fieldSelector": ["metadata.name!=b"]}
    assert [r.path for r in server.requests] == ["/apis/example.com/v1/namespaces/ns/widgets"] * 3
    assert [r.query for r in server.requests] == [
        {**selectors, "limit": ["1"]},
        {**selectors, "limit": ["1"], "continue": ["t1"]},
        {**selectors, "limit": ["1"], "continue": ["t2"]},
    ]


async def test_list_without_a_namespace_lists_all_namespaces_in_one_request() -> None:
    page = {"metadata": {"resourceVersion": "7"}, "items": []}
    async with serving(Reply.json(page)) as (server, client):
        listed = await Api(client, PODS).list(resource_version="0")
    assert listed.items == [] and listed.resource_version == "7"
    (request,) = server.requests
    assert request.path == "/api/v1/pods" and request.query == {"resourceVersion": ["0"]}


async def test_an_expired_continue_token_restarts_as_one_full_list() -> None:
    first = {"metadata": {"continue": "t1", "resourceVersion": "5"}, "items": [{"n": 1}]}
    full = {"metadata": {"resourceVersion": "9"}, "items": [{"n": 1}, {"n": 2}]}
    expired = Reply.failure(410, "Expired", "The provided continue parameter is too old")
    async with serving(Reply.json(first), expired, Reply.json(full)) as (server, client):
        listed = await Api(client, PODS, "ns").list(label_selector="a=b", limit=1)
    assert [o["n"] for o in listed] == [1, 2] and listed.resource_version == "9"
    assert server.requests[2].query == {"labelSelector": ["a=b"]}


async def test_a_410_on_the_first_page_is_raised() -> None:
    async with serving(Reply.failure(410, "Expired", "too old")) as (_, client):
        with pytest.raises(Gone):
            await Api(client, PODS, "ns").list(resource_version="3")


async def test_create_posts_to_the_objects_namespace_with_kind_and_api_version() -> None:
    async with serving(ok(), ok()) as (server, client):
        await Api(client, WIDGETS).create({"metadata": {"name": "w", "namespace": "ns"}})
        await Api(client, CONFIGMAPS, "ns").create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
            field_manager="me",
        )
    widget, configmap = server.requests
    assert (widget.method, widget.target) == ("POST", "/apis/example.com/v1/namespaces/ns/widgets")
    assert body(widget) == {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns"},
    }
    assert widget.headers["content-type"] == "application/json"
    assert configmap.path == CM and configmap.query == {"fieldManager": ["me"]}


async def test_replace_puts_the_object_and_a_stale_resource_version_is_a_conflict() -> None:
    stale = Reply.failure(409, "Conflict", "the object has been modified")
    async with serving(ok(), stale) as (server, client):
        api = Api(client, CONFIGMAPS, "ns")
        obj = {"metadata": {"name": "c", "resourceVersion": "4"}, "data": {"a": "1"}}
        await api.replace(obj)
        with pytest.raises(Conflict, match="modified"):
            await api.replace(obj)
    put = server.requests[0]
    assert (put.method, put.target) == ("PUT", f"{CM}/c")
    assert body(put)["metadata"]["resourceVersion"] == "4" and body(put)["kind"] == "ConfigMap"


async def test_delete_sends_preconditions_policy_and_grace_as_delete_options() -> None:
    async with serving(ok({"kind": "Status"}), ok()) as (server, client):
        api = Api(client, DEPLOYMENTS, "ns")
        await api.delete(
            "d",
            preconditions={"uid": "u1", "resourceVersion": "8"},
            propagation_policy="Foreground",
            grace_period_seconds=0,
        )
        await api.delete("e")
    full, bare = server.requests
    assert (full.method, full.target) == ("DELETE", "/apis/apps/v1/namespaces/ns/deployments/d")
    assert body(full) == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "preconditions": {"uid": "u1", "resourceVersion": "8"},
        "propagationPolicy": "Foreground",
        "gracePeriodSeconds": 0,
    }
    assert body(bare) == {"kind": "DeleteOptions", "apiVersion": "v1"}


async def test_delete_refuses_unknown_preconditions_and_policies_without_a_request() -> None:
    async with serving() as (server, client):
        api = Api(client, PODS, "ns")
        with pytest.raises(ValueError, match="uid and resourceVersion"):
            await api.delete("p", preconditions={"name": "p"})
        with pytest.raises(ValueError, match="Foreground, Background or Orphan"):
            await api.delete("p", propagation_policy="Cascade")  # type: ignore[arg-type]
    assert server.requests == []


@pytest.mark.parametrize(
    ("patch_type", "patch", "content_type"),
    [
        ("merge", {"data": {"a": None}}, "application/merge-patch+json"),
        ("json", [{"op": "remove", "path": "/data/a"}], "application/json-patch+json"),
        ("strategic", {"data": {"a": "2"}}, "application/strategic-merge-patch+json"),
    ],
)
async def test_each_patch_type_is_sent_with_its_content_type(
    patch_type: Any, patch: Any, content_type: str
) -> None:
    async with serving(ok()) as (server, client):
        await Api(client, CONFIGMAPS, "ns").patch("c", patch, type=patch_type, field_manager="m")
    (request,) = server.requests
    assert (request.method, request.target) == ("PATCH", f"{CM}/c?fieldManager=m")
    assert request.headers["content-type"] == content_type
    assert body(request) == patch


async def test_merge_is_the_default_patch_type() -> None:
    async with serving(ok()) as (server, client):
        await Api(client, WIDGETS, "ns").patch("w", {"spec": {"replicas": 2}})
    assert server.requests[0].headers["content-type"] == "application/merge-patch+json"


async def test_strategic_merge_is_refused_for_custom_resources_before_any_request() -> None:
    async with serving() as (server, client):
        widgets = Api(client, WIDGETS, "ns")
        with pytest.raises(ValueError, match=r"Widget \(example\.com/v1\) is a custom resource"):
            await widgets.patch("w", {"spec": {}}, type="strategic")
        with pytest.raises(ValueError, match="custom resource"):
            await widgets.patch_status("w", {"status": {}}, type="strategic")
    assert server.requests == []


async def test_patch_bodies_must_fit_their_type() -> None:
    async with serving() as (server, client):
        api = Api(client, CONFIGMAPS, "ns")
        with pytest.raises(ValueError, match="list of operations"):
            await api.patch("c", {"data": {}}, type="json")
        with pytest.raises(ValueError, match="a merge patch is a dict"):
            await api.patch("c", [{"op": "remove", "path": "/data"}])
        with pytest.raises(ValueError, match="unknown patch type 'yaml'"):
            await api.patch("c", {}, type="yaml")  # type: ignore[arg-type]
    assert server.requests == []


async def test_apply_sends_the_object_as_an_apply_patch_with_manager_and_force() -> None:
    async with serving(ok(), ok()) as (server, client):
        api = Api(client, WIDGETS, "ns")
        await api.apply({"metadata": {"name": "w"}, "spec": {"replicas": 1}}, field_manager="op")
        await api.apply({"metadata": {"name": "w"}}, field_manager="op", force=True)
    plain, forced = server.requests
    assert (plain.method, plain.path) == ("PATCH", "/apis/example.com/v1/namespaces/ns/widgets/w")
    assert plain.headers["content-type"] == "application/apply-patch+yaml"
    assert plain.query == {"fieldManager": ["op"]}
    assert body(plain) == {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"replicas": 1},
    }
    assert forced.query == {"fieldManager": ["op"], "force": ["true"]}


async def test_apply_needs_a_field_manager_and_a_name() -> None:
    async with serving() as (server, client):
        api = Api(client, WIDGETS, "ns")
        with pytest.raises(ValueError, match="field_manager"):
            await api.apply({"metadata": {"name": "w"}}, field_manager="")
        with pytest.raises(ValueError, match=r"no metadata\.name"):
            await api.apply({"spec": {}}, field_manager="op")
    assert server.requests == []


async def test_status_verbs_use_the_status_subresource() -> None:
    async with serving(ok(), ok(), ok(), ok()) as (server, client):
        api = Api(client, WIDGETS)
        ns_api = Api(client, WIDGETS, "ns")
        await ns_api.get_status("w")
        await api.replace_status({"metadata": {"name": "w", "namespace": "ns"}, "status": {}})
        await ns_api.patch_status(
            "w", [{"op": "add", "path": "/status/ok", "value": True}], type="json"
        )
        await ns_api.apply_status({"metadata": {"name": "w"}, "status": {}}, field_manager="op")
    status = "/apis/example.com/v1/namespaces/ns/widgets/w/status"
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", status),
        ("PUT", status),
        ("PATCH", status),
        ("PATCH", status),
    ]
    assert [r.headers.get("content-type") for r in server.requests[2:]] == [
        "application/json-patch+json",
        "application/apply-patch+yaml",
    ]


async def test_a_namespaced_verb_without_any_namespace_is_refused() -> None:
    async with serving() as (server, client):
        api = Api(client, PODS)
        with pytest.raises(ValueError, match="namespaced"):
            await api.get("p")
        with pytest.raises(ValueError, match="namespaced"):
            await api.replace({"metadata": {"name": "p"}})
        with pytest.raises(ValueError, match="namespaced"):
            await api.create({"metadata": {"name": "p"}})
    with pytest.raises(ValueError, match="cluster-scoped"):
        Api(client, NAMESPACES, "ns")
    assert server.requests == []
