"""Discovery: aggregated and per-group-version answers, the cache, one re-query on a miss.

The apiserver here is tests/streamserver.py answering discovery documents shaped like
kube-apiserver v1.37's (a server without aggregated discovery cannot be had from testenv,
and a CRD appearing between two requests is staged on cue). The real apiserver's answers
are checked in tests/e2e/test_api_e2e.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from streamserver import Reply, Request, StreamServer, open_stream_server

from trio_controller.api import Discovery, Resource, ResourceNotFound, split_api_version
from trio_controller.api.discovery import AGGREGATED_DISCOVERY
from trio_controller.config import ClusterConfig
from trio_controller.errors import NotFound
from trio_controller.transport.client import Client


def aggregated(*groups: tuple[str, str, list[tuple[str, str, str]]]) -> dict[str, Any]:
    """An APIGroupDiscoveryList: (group, version, [(plural, kind, scope)])."""
    items = []
    for group, version, resources in groups:
        items.append(
            {
                "metadata": {"name": group} if group else {},
                "versions": [
                    {
                        "version": version,
                        "resources": [
                            {
                                "resource": plural,
                                "responseKind": {"group": "", "version": "", "kind": kind},
                                "scope": scope,
                                "verbs": ["get", "list"],
                                "subresources": [
                                    {"subresource": "status", "responseKind": {"kind": kind}}
                                ],
                            }
                            for plural, kind, scope in resources
                        ],
                        "freshness": "Current",
                    }
                ],
            }
        )
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "items": items}


CORE = ("", "v1", [("pods", "Pod", "Namespaced"), ("namespaces", "Namespace", "Cluster")])
APPS = ("apps", "v1", [("deployments", "Deployment", "Namespaced")])
WIDGETS = ("example.com", "v1", [("widgets", "Widget", "Namespaced")])


class FakeDiscovery:
    """Answers /api and /apis from `core` and `groups` (aggregated when `aggregated`),
    else APIVersions/APIGroupList, and /api/v1, /apis/<g>/<v> from `resource_lists`."""

    def __init__(self, *, groups: list[Any], is_aggregated: bool = True) -> None:
        self.groups = groups
        self.is_aggregated = is_aggregated
        self.resource_lists: dict[str, dict[str, Any]] = {}

    def __call__(self, request: Request) -> Reply:
        if request.path in ("/api", "/apis") and self.is_aggregated:
            core = request.path == "/api"
            chosen = [g for g in self.groups if (g[0] == "") == core]
            return Reply(
                200,
                Reply.json(aggregated(*chosen)).body,
                content_type=AGGREGATED_DISCOVERY,
            )
        if request.path == "/api":
            return Reply.json({"kind": "APIVersions", "versions": ["v1"]})
        if request.path == "/apis":
            return Reply.json({"kind": "APIGroupList", "groups": []})
        found = self.resource_lists.get(request.path)
        if found is None:
            return Reply.failure(
                404, "NotFound", "the server could not find the requested resource"
            )
        return Reply.json(found)


@asynccontextmanager
async def serving(fake: FakeDiscovery) -> AsyncIterator[tuple[StreamServer, Client]]:
    async with (
        open_stream_server(handler=fake) as server,
        Client(ClusterConfig(server=server.url)) as client,
    ):
        yield server, client


async def test_aggregated_discovery_resolves_every_group_with_two_requests() -> None:
    async with serving(FakeDiscovery(groups=[CORE, APPS, WIDGETS])) as (server, client):
        discovery = Discovery(client)
        assert await discovery.resource_for("v1", "Pod") == Resource("", "v1", "pods", "Pod")
        assert await discovery.resource_for("apps/v1", "Deployment") == Resource(
            "apps", "v1", "deployments", "Deployment"
        )
        widgets = await discovery.resource_for("example.com/v1", "Widget")
        assert widgets == Resource("example.com", "v1", "widgets", "Widget", namespaced=True)
        namespaces = await discovery.resource_for_plural("v1", "namespaces")
        assert namespaces.kind == "Namespace" and namespaces.namespaced is False
        assert discovery.aggregated is True
        assert [r.path for r in server.requests] == ["/api", "/apis"]
        for request in server.requests:
            assert request.headers["accept"].startswith(AGGREGATED_DISCOVERY + ",")
            assert request.headers["accept"].endswith(",application/json")


async def test_without_aggregated_discovery_each_group_version_is_asked_once() -> None:
    fake = FakeDiscovery(groups=[], is_aggregated=False)
    fake.resource_lists["/apis/example.com/v1"] = {
        "kind": "APIResourceList",
        "groupVersion": "example.com/v1",
        "resources": [
            {"name": "widgets", "kind": "Widget", "namespaced": True, "verbs": ["get"]},
            {"name": "widgets/status", "kind": "Widget", "namespaced": True, "verbs": ["get"]},
            {"name": "gadgets", "kind": "Gadget", "namespaced": False, "verbs": ["get"]},
        ],
    }
    fake.resource_lists["/api/v1"] = {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "pods", "kind": "Pod", "namespaced": True},
            {"name": "pods/status", "kind": "Pod", "namespaced": True},
        ],
    }
    async with serving(fake) as (server, client):
        discovery = Discovery(client)
        assert await discovery.resource_for("example.com/v1", "Widget") == Resource(
            "example.com", "v1", "widgets", "Widget"
        )
        assert discovery.aggregated is False
        gadgets = await discovery.resource_for_plural("example.com/v1", "gadgets")
        assert gadgets.namespaced is False
        assert await discovery.resource_for("v1", "Pod") == Resource("", "v1", "pods", "Pod")
        assert sorted(r.plural for r in await discovery.resources("example.com/v1")) == [
            "gadgets",
            "widgets",
        ]
        # The aggregated probe once, then one APIResourceList per group version, cached.
        assert [r.path for r in server.requests] == [
            "/api",
            "/apis",
            "/apis/example.com/v1",
            "/api/v1",
        ]
        assert server.requests[2].headers["accept"] == "application/json"


async def test_a_kind_created_after_the_cache_was_filled_is_found_by_one_re_query() -> None:
    fake = FakeDiscovery(groups=[CORE])
    async with serving(fake) as (server, client):
        discovery = Discovery(client)
        await discovery.resource_for("v1", "Pod")
        fake.groups.append(WIDGETS)  # the CRD is created now
        assert (await discovery.resource_for("example.com/v1", "Widget")).plural == "widgets"
        await discovery.resource_for("example.com/v1", "Widget")  # cached from now on
        assert [r.path for r in server.requests] == ["/api", "/apis", "/api", "/apis"]


async def test_a_kind_still_missing_after_the_re_query_is_a_not_found_naming_it() -> None:
    async with serving(FakeDiscovery(groups=[CORE, APPS])) as (server, client):
        discovery = Discovery(client)
        await discovery.resource_for("v1", "Pod")
        with pytest.raises(ResourceNotFound) as caught:
            await discovery.resource_for("example.com/v1", "Widget")
        assert isinstance(caught.value, NotFound) and caught.value.status == 404
        assert "'Widget' in example.com/v1" in str(caught.value)
        with pytest.raises(ResourceNotFound, match="plural 'deployment' in apps/v1"):
            await discovery.resource_for_plural("apps/v1", "deployment")
        # One re-query per failed lookup, no more.
        assert [r.path for r in server.requests] == ["/api", "/apis"] * 3


async def test_an_unknown_group_version_without_aggregated_discovery_is_not_found() -> None:
    async with serving(FakeDiscovery(groups=[], is_aggregated=False)) as (server, client):
        discovery = Discovery(client)
        with pytest.raises(ResourceNotFound, match=r"'Widget' in example\.com/v9"):
            await discovery.resource_for("example.com/v9", "Widget")
        assert [r.path for r in server.requests] == ["/api", "/apis", "/apis/example.com/v9"]


async def test_concurrent_lookups_share_one_query() -> None:
    async with serving(FakeDiscovery(groups=[CORE, APPS])) as (server, client):
        discovery = Discovery(client)
        found: list[Resource] = []

        async def look(api_version: str, kind: str) -> None:
            found.append(await discovery.resource_for(api_version, kind))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(look, "apps/v1", "Deployment")
                nursery.start_soon(look, "v1", "Pod")
        assert len(found) == 6
        assert [r.path for r in server.requests] == ["/api", "/apis"]


async def test_invalidate_makes_the_next_lookup_ask_again() -> None:
    async with serving(FakeDiscovery(groups=[CORE])) as (server, client):
        discovery = Discovery(client)
        await discovery.resource_for("v1", "Pod")
        discovery.invalidate()
        await discovery.resource_for("v1", "Pod")
        assert len(server.requests) == 4


@pytest.mark.parametrize(
    ("api_version", "expected"),
    [("v1", ("", "v1")), ("example.com/v1", ("example.com", "v1")), ("apps/v1", ("apps", "v1"))],
)
def test_api_versions_split_into_group_and_version(
    api_version: str, expected: tuple[str, str]
) -> None:
    assert split_api_version(api_version) == expected


@pytest.mark.parametrize("bad", ["", "/v1", "example.com/", "a/b/c"])
def test_malformed_api_versions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an apiVersion"):
        split_api_version(bad)
