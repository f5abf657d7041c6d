"""Discovery: which `Resource` serves a kind (or a plural) of a group version.

    discovery = Discovery(client)
    widgets = await discovery.resource_for("example.com/v1", "Widget")
    pods = await discovery.resource_for_plural("v1", "pods")

    first lookup ──▶ GET /api, GET /apis   (aggregated: every group version at once,
         │           Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList)
         │        or GET /api/v1 | /apis/<group>/<version>   (an APIResourceList, when the
         │           server answers the aggregated request with a plain APIVersions/APIGroupList)
         ▼
    cache by group version ──▶ hit: the Resource
         │ miss
         ▼
    one re-query (a CRD created since is found now) ──▶ still missing: ResourceNotFound

The cache holds what the server said until `invalidate()`; only a miss re-queries, once
per lookup, as client-go's deferred RESTMapper resets on a miss. Subresources
(`pods/status`) are not resources of their own here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from trio_controller.api.resource import Resource
from trio_controller.errors import NotFound

__all__ = [
    "AGGREGATED_DISCOVERY",
    "Discovery",
    "ResourceNotFound",
    "split_api_version",
]

AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
# Offered first; a server without aggregated discovery answers the plain JSON instead.
_ACCEPT = f"{AGGREGATED_DISCOVERY},application/json"


class _JsonClient(Protocol):
    async def request_json(
        self, method: str, path: str, body: Any = None, *, accept: str | None = None
    ) -> Any: ...


class ResourceNotFound(NotFound):
    """The apiserver serves no such kind (or plural) in that group version, even after a
    fresh look. A `NotFound` (404), so code catching that catches this too."""

    def __init__(self, api_version: str, what: str) -> None:
        super().__init__(
            404, "NotFound", f"the server has no resource {what} in {api_version} (discovery)"
        )
        self.api_version = api_version
        self.what = what


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"v1"`` → ``("", "v1")``; ``"example.com/v1"`` → ``("example.com", "v1")``."""
    group, slash, version = api_version.rpartition("/")
    if not version or (slash and not group) or "/" in group:
        raise ValueError(f"not an apiVersion: {api_version!r} (want v1 or group/version)")
    return group, version


@dataclass
class _GroupVersion:
    """What the server serves in one group version, by kind and by plural."""

    by_kind: dict[str, Resource] = field(default_factory=dict)
    by_plural: dict[str, Resource] = field(default_factory=dict)

    def add(self, resource: Resource) -> None:
        # The first resource of a kind wins, in the server's order.
        self.by_kind.setdefault(resource.kind, resource)
        self.by_plural[resource.plural] = resource


def _from_aggregated(document: Mapping[str, Any]) -> dict[str, _GroupVersion]:
    """Group versions of an APIGroupDiscoveryList (apidiscovery.k8s.io/v2)."""
    found: dict[str, _GroupVersion] = {}
    for item in document.get("items") or ():
        group = (item.get("metadata") or {}).get("name") or ""
        for version_entry in item.get("versions") or ():
            version = version_entry["version"]
            served = found.setdefault(f"{group}/{version}" if group else version, _GroupVersion())
            for entry in version_entry.get("resources") or ():
                kind = (entry.get("responseKind") or {}).get("kind")
                if not kind:
                    continue
                served.add(
                    Resource(
                        group, version, entry["resource"], kind, entry.get("scope") != "Cluster"
                    )
                )
    return found


def _from_resource_list(group: str, version: str, document: Mapping[str, Any]) -> _GroupVersion:
    """One group version from an APIResourceList (`/api/v1`, `/apis/<group>/<version>`)."""
    served = _GroupVersion()
    for entry in document.get("resources") or ():
        name = entry["name"]
        if "/" in name:  # pods/status, deployments/scale: subresources
            continue
        served.add(Resource(group, version, name, entry["kind"], bool(entry.get("namespaced"))))
    return served


class Discovery:
    """Resolves kinds and plurals to `Resource` values by asking the apiserver.

    Takes a `Client` (anything with its `request_json`). Lookups are cached; concurrent
    ones share one query. `aggregated` is None until the first query, then whether the
    server offered aggregated discovery.
    """

    def __init__(self, client: _JsonClient) -> None:
        self._client = client
        self._lock = trio.Lock()
        self._served: dict[str, _GroupVersion] = {}
        self._generation = 0  # counts queries, so waiters do not query again
        self.aggregated: bool | None = None

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        """The resource of `kind` in `api_version` (``"v1"``, ``"example.com/v1"``).

        Raises `ResourceNotFound` when the server does not serve it, after one re-query."""
        return await self._lookup(api_version, kind, by_kind=True)

    async def resource_for_plural(self, api_version: str, plural: str) -> Resource:
        """The resource named `plural` (``"widgets"``) in `api_version`."""
        return await self._lookup(api_version, plural, by_kind=False)

    async def resources(self, api_version: str) -> list[Resource]:
        """Every resource the server serves in `api_version` (empty if none), from the
        cache when it holds the group version."""
        split_api_version(api_version)
        served = self._served.get(api_version)
        if served is None:
            await self._refresh(api_version, self._generation)
            served = self._served.get(api_version)
        return list(served.by_plural.values()) if served else []

    def invalidate(self) -> None:
        """Forget everything: the next lookup asks the server again."""
        self._served = {}

    def _cached(self, api_version: str, name: str, by_kind: bool) -> Resource | None:
        served = self._served.get(api_version)
        if served is None:
            return None
        return (served.by_kind if by_kind else served.by_plural).get(name)

    async def _lookup(self, api_version: str, name: str, *, by_kind: bool) -> Resource:
        split_api_version(api_version)
        found = self._cached(api_version, name, by_kind)
        if found is not None:
            await trio.lowlevel.checkpoint()
            return found
        await self._refresh(api_version, self._generation)
        found = self._cached(api_version, name, by_kind)
        if found is None:
            raise ResourceNotFound(api_version, f"{'kind' if by_kind else 'plural'} {name!r}")
        return found

    async def _refresh(self, api_version: str, seen: int) -> None:
        """Ask the server again, unless another task did since generation `seen`."""
        async with self._lock:
            if self._generation != seen:
                return
            self._generation += 1
            if self.aggregated is not False:
                documents = [
                    await self._client.request_json("GET", path, accept=_ACCEPT)
                    for path in ("/api", "/apis")
                ]
                if all(_is_aggregated(doc) for doc in documents):
                    self.aggregated = True
                    served: dict[str, _GroupVersion] = {}
                    for doc in documents:
                        served.update(_from_aggregated(doc))
                    self._served = served
                    return
                self.aggregated = False
            await self._refresh_one(api_version)

    async def _refresh_one(self, api_version: str) -> None:
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            document = await self._client.request_json("GET", path)
        except NotFound:
            self._served.pop(api_version, None)
            return
        self._served[api_version] = _from_resource_list(group, version, document)


def _is_aggregated(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == "APIGroupDiscoveryList"
