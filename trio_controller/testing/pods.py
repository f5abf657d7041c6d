"""A small async helper that creates, changes and deletes pods through the real API,
authenticated as the envtest admin (client certificate)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from trio_controller.testing.info import EnvInfo

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
_MERGE_PATCH = "application/merge-patch+json"


def pod_manifest(
    name: str, *, labels: dict[str, str] | None = None, image: str = PAUSE_IMAGE
) -> dict[str, Any]:
    """A minimal pod. No scheduler or kubelet runs, so it stays Pending; that is enough
    for list/watch/informer tests."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


class PodHelper:
    """Made by `open_pod_helper`; every method raises `httpx.HTTPStatusError` on a non-2xx
    answer (except where noted)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @staticmethod
    def _pods(namespace: str, name: str | None = None) -> str:
        path = f"/api/v1/namespaces/{namespace}/pods"
        return path if name is None else f"{path}/{name}"

    async def _json(self, response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def create_namespace(self, name: str, *, exist_ok: bool = True) -> dict[str, Any]:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        response = await self.client.post("/api/v1/namespaces", json=body)
        if exist_ok and response.status_code == 409:
            response = await self.client.get(f"/api/v1/namespaces/{name}")
        return await self._json(response)

    async def create_pod(
        self,
        namespace: str,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = copy.deepcopy(manifest) if manifest else pod_manifest(name, labels=labels)
        body.setdefault("metadata", {})["name"] = name
        return await self._json(await self.client.post(self._pods(namespace), json=body))

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod, or None when it does not exist."""
        response = await self.client.get(self._pods(namespace, name))
        if response.status_code == 404:
            return None
        return await self._json(response)

    async def list_pods(
        self, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Pods of `namespace` (all namespaces when None)."""
        path = "/api/v1/pods" if namespace is None else self._pods(namespace)
        params = {"labelSelector": label_selector} if label_selector else None
        items: list[dict[str, Any]] = (
            await self._json(await self.client.get(path, params=params))
        )["items"]
        return items

    async def update_pod(
        self, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Read, apply `change` to the pod in place, write back (PUT); retries on conflict."""
        while True:
            pod = await self._json(await self.client.get(self._pods(namespace, name)))
            change(pod)
            response = await self.client.put(self._pods(namespace, name), json=pod)
            if response.status_code != 409:
                return await self._json(response)

    async def patch_pod(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch, e.g. ``{"metadata": {"labels": {"k": "v"}}}``."""
        response = await self.client.patch(
            self._pods(namespace, name),
            content=json.dumps(patch),
            headers={"Content-Type": _MERGE_PATCH},
        )
        return await self._json(response)

    async def delete_pod(
        self, namespace: str, name: str, *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """Delete at once (grace period 0: no kubelet would confirm a graceful one)."""
        response = await self.client.delete(
            self._pods(namespace, name), params={"gracePeriodSeconds": "0"}
        )
        if missing_ok and response.status_code == 404:
            return None
        return await self._json(response)

    async def delete_all_pods(self, namespace: str) -> None:
        response = await self.client.delete(
            self._pods(namespace), params={"gracePeriodSeconds": "0"}
        )
        response.raise_for_status()


@asynccontextmanager
async def open_pod_helper(
    info: EnvInfo, *, request_timeout: float = 10.0
) -> AsyncIterator[PodHelper]:
    """``async with open_pod_helper(env.info) as pods: await pods.create_pod(...)``"""
    async with httpx.AsyncClient(
        base_url=info.server, verify=info.ssl_context(client_cert=True), timeout=request_timeout
    ) as client:
        yield PodHelper(client)
