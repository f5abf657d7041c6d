"""The API verbs on one resource, with objects as plain dicts (orjson), no models.

    pods = Api(client, PODS, namespace="default")
    pod = await pods.get("web")
    listed = await pods.list(label_selector="app=web", limit=500)   # every page
    listed.items, listed.resource_version
    await pods.patch("web", {"metadata": {"labels": {"tier": "a"}}})           # merge
    await pods.patch("web", [{"op": "remove", "path": "/metadata/labels/tier"}], type="json")
    await widgets.apply(widget, field_manager="widget-operator")               # SSA
    await widgets.patch_status("w1", {"status": {"ready": True}})
    await pods.delete("web", preconditions={"uid": uid}, propagation_policy="Foreground")

Each verb is one `Client.request_json` call (a list, one per page) with the method, path
(`Resource.path`), content type and query parameters the apiserver wants; its errors are
the `trio_controller.errors` classes (a stale resourceVersion on `replace` → `Conflict`).
With `namespace=None` a namespaced resource is used across namespaces: `list` lists them
all, and writes take the namespace from the object's metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from trio_controller.api.resource import Resource
from trio_controller.errors import Gone
from trio_controller.transport.client import Client

__all__ = [
    "BUILTIN_GROUPS",
    "CONTENT_TYPES",
    "WRITE_HOOK",
    "Api",
    "ObjectList",
    "PatchType",
    "PropagationPolicy",
]

Object = dict[str, Any]
PatchType = Literal["merge", "json", "strategic"]
PropagationPolicy = Literal["Foreground", "Background", "Orphan"]

CONTENT_TYPES: Mapping[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"  # the body is JSON, which is YAML

# Groups built into kube-apiserver: only their kinds carry the patch strategies that
# strategic merge needs; the apiserver answers 415 for custom resources.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "extensions",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)

#: Called as `hook(resource, written_object)` after each create, replace, patch and apply
#: (status ones too) that returns the object, in the context that set it. A controller
#: sets it around each reconcile to read its own writes (runtime/freshness.py).
WRITE_HOOK: ContextVar[Callable[[Resource, dict[str, Any]], None] | None] = ContextVar(
    "trio_controller_write_hook", default=None
)


def _wrote(resource: Resource, obj: Object) -> Object:
    hook = WRITE_HOOK.get()
    if hook is not None and isinstance(obj, dict):
        hook(resource, obj)
    return obj


_PRECONDITIONS = frozenset({"uid", "resourceVersion"})
_POLICIES = frozenset({"Foreground", "Background", "Orphan"})


@dataclass(frozen=True)
class ObjectList:
    """A whole list, all pages joined: `items` (each with `apiVersion` and `kind` set,
    as the apiserver leaves them out of list items) and the list's `resource_version`,
    to watch from."""

    items: list[Object]
    resource_version: str

    def __iter__(self) -> Iterator[Object]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class Api:
    """The verbs on one `resource`, in `namespace` (None: all namespaces, or a
    cluster-scoped resource). Cheap to make; holds no state but its arguments."""

    def __init__(self, client: Client, resource: Resource, namespace: str | None = None) -> None:
        if namespace is not None and not resource.namespaced:
            raise ValueError(f"{resource.kind} is cluster-scoped: it has no namespace")
        self.client = client
        self.resource = resource
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"Api({self.resource.display}, namespace={self.namespace!r})"

    # -- paths ----------------------------------------------------------------------------
    def _path(self, name: str, subresource: str | None = None, namespace: str | None = None) -> str:
        namespace = namespace or self.namespace
        if self.resource.namespaced and namespace is None:
            raise ValueError(
                f"{self.resource.kind} {name!r} is namespaced: give Api(..., namespace=) "
                "or metadata.namespace"
            )
        return self.resource.path(
            namespace if self.resource.namespaced else None, name, subresource
        )

    def _object_path(self, obj: Mapping[str, Any], subresource: str | None = None) -> str:
        metadata = obj.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            raise ValueError(f"the {self.resource.kind} has no metadata.name")
        return self._path(name, subresource, metadata.get("namespace"))

    def _collection(self, namespace: str | None = None) -> str:
        namespace = namespace or self.namespace
        return self.resource.path(namespace if self.resource.namespaced else None)

    def _typed(self, obj: Mapping[str, Any]) -> Object:
        """`obj` with apiVersion and kind filled in when missing (the caller's is kept)."""
        return {"apiVersion": self.resource.api_version, "kind": self.resource.kind, **obj}

    # -- reads ----------------------------------------------------------------------------
    async def get(self, name: str) -> Object:
        """The object `name`; `NotFound` if there is none."""
        obj: Object = await self.client.request_json("GET", self._path(name))
        return obj

    async def list(
        self,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        resource_version: str | None = None,
    ) -> ObjectList:
        """Every object (of the namespace, or all), read `limit` at a time following the
        `continue` token. An expired token (410) restarts as one full list, as client-go's
        pager does. `resource_version` ("0": any cached state) is for the first page."""
        base: dict[str, str | int] = {}
        if label_selector:
            base["labelSelector"] = label_selector
        if field_selector:
            base["fieldSelector"] = field_selector
        path = self._collection()
        items: list[Object] = []
        params = dict(base)
        if limit:
            params["limit"] = limit
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        while True:
            try:
                page = orjson.loads(await self.client.list_page(path, params))
            except Gone:
                if "continue" not in params:
                    raise
                items, params = [], dict(base)  # the token expired: one full list
                continue
            items.extend(page.get("items") or ())
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                break
            params = {**base, "limit": limit or 0, "continue": token}
        for item in items:
            item.setdefault("apiVersion", self.resource.api_version)
            item.setdefault("kind", self.resource.kind)
        return ObjectList(items, str(metadata.get("resourceVersion") or ""))

    async def get_status(self, name: str) -> Object:
        """The object as read through its status subresource."""
        obj: Object = await self.client.request_json("GET", self._path(name, "status"))
        return obj

    # -- writes ---------------------------------------------------------------------------
    async def create(self, obj: Mapping[str, Any], *, field_manager: str | None = None) -> Object:
        """POST `obj` (a dict; apiVersion and kind default to the resource's); the created
        object. `Conflict` if it exists."""
        namespace = (obj.get("metadata") or {}).get("namespace") or self.namespace
        if self.resource.namespaced and namespace is None:
            raise ValueError(
                f"a {self.resource.kind} is namespaced: give Api(..., namespace=) "
                "or metadata.namespace"
            )
        created: Object = await self.client.request_json(
            "POST",
            self._collection(namespace),
            self._typed(obj),
            params=_manager(field_manager),
        )
        return _wrote(self.resource, created)

    async def replace(self, obj: Mapping[str, Any], *, field_manager: str | None = None) -> Object:
        """PUT `obj` over the object of its name. With metadata.resourceVersion set, a
        newer object on the server raises `Conflict`."""
        return await self._put(obj, None, field_manager)

    async def replace_status(
        self, obj: Mapping[str, Any], *, field_manager: str | None = None
    ) -> Object:
        """PUT `obj` to the status subresource: only its status is written."""
        return await self._put(obj, "status", field_manager)

    async def _put(
        self, obj: Mapping[str, Any], subresource: str | None, field_manager: str | None
    ) -> Object:
        replaced: Object = await self.client.request_json(
            "PUT",
            self._object_path(obj, subresource),
            self._typed(obj),
            params=_manager(field_manager),
        )
        return _wrote(self.resource, replaced)

    async def patch(
        self,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        type: PatchType = "merge",
        field_manager: str | None = None,
    ) -> Object:
        """PATCH `name`: `type` "merge" (RFC 7386, a dict), "json" (RFC 6902, a list of
        operations) or "strategic" (built-in kinds only; refused for custom resources)."""
        return await self._patch(name, patch, type, None, field_manager)

    async def patch_status(
        self,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        type: PatchType = "merge",
        field_manager: str | None = None,
    ) -> Object:
        """`patch` on the status subresource."""
        return await self._patch(name, patch, type, "status", field_manager)

    async def _patch(
        self,
        name: str,
        patch: Any,
        type: str,
        subresource: str | None,
        field_manager: str | None,
    ) -> Object:
        content_type = CONTENT_TYPES.get(type)
        if content_type is None:
            raise ValueError(f"unknown patch type {type!r}: use merge, json or strategic")
        if type == "json" and isinstance(patch, Mapping):
            raise ValueError("a JSON patch is a list of operations, not a dict")
        if type != "json" and not isinstance(patch, Mapping):
            raise ValueError(f"a {type} patch is a dict, not {patch.__class__.__name__}")
        if type == "strategic" and self.resource.group not in BUILTIN_GROUPS:
            raise ValueError(
                f"strategic merge patch works on built-in kinds only, and "
                f"{self.resource.kind} ({self.resource.api_version}) is a custom resource: "
                'use type="merge" or "json", or apply()'
            )
        patched: Object = await self.client.request_json(
            "PATCH",
            self._path(name, subresource),
            patch,
            params=_manager(field_manager),
            content_type=content_type,
        )
        return _wrote(self.resource, patched)

    async def apply(
        self, obj: Mapping[str, Any], *, field_manager: str, force: bool = False
    ) -> Object:
        """Server-side apply of `obj` (a dict holding the fields this manager owns;
        apiVersion and kind default to the resource's). Fields another manager owns
        raise `Conflict` unless `force` takes them over."""
        return await self._apply(obj, None, field_manager, force)

    async def apply_status(
        self, obj: Mapping[str, Any], *, field_manager: str, force: bool = False
    ) -> Object:
        """Server-side apply to the status subresource."""
        return await self._apply(obj, "status", field_manager, force)

    async def _apply(
        self, obj: Mapping[str, Any], subresource: str | None, field_manager: str, force: bool
    ) -> Object:
        if not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        params: dict[str, str | bool] = {"fieldManager": field_manager}
        if force:
            params["force"] = True
        applied: Object = await self.client.request_json(
            "PATCH",
            self._object_path(obj, subresource),
            self._typed(obj),
            params=params,
            content_type=APPLY_CONTENT_TYPE,
        )
        return _wrote(self.resource, applied)

    async def delete(
        self,
        name: str,
        *,
        preconditions: Mapping[str, str] | None = None,
        propagation_policy: PropagationPolicy | None = None,
        grace_period_seconds: int | None = None,
    ) -> Object:
        """DELETE `name` with DeleteOptions: `preconditions` (uid and/or resourceVersion
        the object must still have, else `Conflict`), `propagation_policy` (Foreground,
        Background, Orphan: what happens to dependents), `grace_period_seconds`.
        Returns what the server answers: the object (still there while finalizers or a
        foreground deletion run) or a Status."""
        options: Object = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if preconditions:
            unknown = set(preconditions) - _PRECONDITIONS
            if unknown:
                raise ValueError(
                    f"preconditions are uid and resourceVersion, not {sorted(unknown)}"
                )
            options["preconditions"] = dict(preconditions)
        if propagation_policy is not None:
            if propagation_policy not in _POLICIES:
                raise ValueError(
                    f"propagation_policy is Foreground, Background or Orphan, "
                    f"not {propagation_policy!r}"
                )
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        answer: Object = await self.client.request_json("DELETE", self._path(name), options)
        return answer


def _manager(field_manager: str | None) -> dict[str, str] | None:
    return {"fieldManager": field_manager} if field_manager else None
