"""Writers: churn pods (create, label patch, delete) towards a final state the model knows.

Each namespace has one writer and its own keys (`<ns>-<n>`), so a key's writes are
sequential. Every write is retried until the apiserver gives a definite answer
(connection errors, 429 and 5xx are retried), and each is idempotent on retry: a create
answered 409 had been made by an attempt whose answer was lost, a delete answered 404
likewise. So after the churn, the model is the cluster: `final_state()` checks that.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from trio_controller.testing.pods import pod_manifest

RETRY_PAUSE = 0.2
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


class WriteFailed(RuntimeError):
    """The apiserver refused a write for good (the soak driver, not the controller)."""


@dataclass
class Model:
    labels: dict[str, dict[str, str] | None] = field(default_factory=dict)  # None: deleted
    writes: int = 0
    creates: int = 0
    patches: int = 0
    deletes: int = 0
    retries: int = 0
    done: list[tuple[float, str]] = field(default_factory=list)  # (sent at, key) per write

    def final(self) -> dict[str, bool]:
        """Every key ever created, and whether it exists now."""
        return {key: labels is not None for key, labels in self.labels.items()}


async def _request(
    client: httpx.AsyncClient,
    model: Model,
    method: str,
    url: str,
    sent: list[float] | None = None,
    **kw: Any,
) -> httpx.Response:
    """Retried until a definite answer; `sent[0]` is when the answered attempt was sent
    (its watch event may reach the controller before its answer reaches us, so lag is
    measured from then)."""
    while True:
        if sent is not None:
            sent[:] = [trio.current_time()]
        try:
            response = await client.request(method, url, **kw)
        except httpx.TransportError:
            model.retries += 1
            await trio.sleep(RETRY_PAUSE)
            continue
        if response.status_code == 429 or response.status_code >= 500:
            model.retries += 1
            await trio.sleep(RETRY_PAUSE)
            continue
        return response


class Writer:
    def __init__(
        self,
        client: httpx.AsyncClient,
        model: Model,
        namespace: str,
        *,
        keys: int,
        rate: float,
        rng: random.Random,
    ) -> None:
        self.client = client
        self.model = model
        self.namespace = namespace
        self.keys = keys
        self.rate = rate
        self.rng = rng
        self._generation = 0
        self._sent = [0.0]

    def _path(self, name: str | None = None) -> str:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        return path if name is None else f"{path}/{name}"

    async def run(self, until: float) -> None:
        """Write at about `rate` per second until Trio time `until`."""
        while trio.current_time() < until:
            started = trio.current_time()
            await self.step()
            await trio.sleep(max(0.0, 1.0 / self.rate - (trio.current_time() - started)))

    def _labels(self) -> dict[str, str]:
        self._generation += 1
        return {"soak": "yes", "gen": str(self._generation)}

    async def step(self) -> None:
        """One write to a random key of this namespace: create it if it does not exist,
        else patch its labels (60%) or delete it (40%)."""
        n = self.rng.randrange(self.keys)
        key = f"{self.namespace}/{self.namespace}-{n}"
        if self.model.labels.get(key) is None:
            await self.create(n)
        elif self.rng.random() < 0.6:
            await self.patch(n)
        else:
            await self.delete(n)

    async def create(self, n: int) -> None:
        name = f"{self.namespace}-{n}"
        key, labels, model = f"{self.namespace}/{name}", self._labels(), self.model
        body = pod_manifest(name, labels=labels)
        r = await _request(self.client, model, "POST", self._path(), self._sent, json=body)
        if r.status_code == 409:  # an earlier attempt made it, or a patch makes it so
            await self.patch(n, labels)
            return
        if r.status_code != 201:
            raise WriteFailed(f"create {key}: {r.status_code} {r.text[:200]}")
        model.creates += 1
        model.writes += 1
        model.done.append((self._sent[0], key))
        model.labels[key] = labels

    async def patch(self, n: int, labels: dict[str, str] | None = None) -> None:
        name = f"{self.namespace}-{n}"
        key, labels, model = f"{self.namespace}/{name}", labels or self._labels(), self.model
        patch = json.dumps({"metadata": {"labels": labels}})
        r = await _request(
            self.client,
            model,
            "PATCH",
            self._path(name),
            self._sent,
            content=patch,
            headers=MERGE_PATCH,
        )
        if r.status_code != 200:
            raise WriteFailed(f"patch {key}: {r.status_code} {r.text[:200]}")
        model.patches += 1
        model.writes += 1
        model.done.append((self._sent[0], key))
        model.labels[key] = labels

    async def delete(self, n: int) -> None:
        name = f"{self.namespace}-{n}"
        key, model = f"{self.namespace}/{name}", self.model
        r = await _request(
            self.client,
            model,
            "DELETE",
            self._path(name),
            self._sent,
            params={"gracePeriodSeconds": "0"},
        )
        if r.status_code not in (200, 202, 404):  # 404: an earlier attempt deleted it
            raise WriteFailed(f"delete {key}: {r.status_code} {r.text[:200]}")
        model.deletes += 1
        model.writes += 1
        model.done.append((self._sent[0], key))
        model.labels[key] = None


async def cluster_drift(
    client: httpx.AsyncClient, model: Model, namespaces: list[str]
) -> list[str]:
    """Where the cluster differs from the model (empty when the writers did their job)."""
    actual: dict[str, dict[str, str]] = {}
    for namespace in namespaces:
        r = await _request(client, model, "GET", f"/api/v1/namespaces/{namespace}/pods")
        r.raise_for_status()
        for item in r.json()["items"]:
            meta = item["metadata"]
            actual[f"{namespace}/{meta['name']}"] = meta.get("labels") or {}
    drift = []
    for key, labels in sorted(model.labels.items()):
        if labels is None and key in actual:
            drift.append(f"{key} exists, the model deleted it")
        elif labels is not None and actual.get(key) != labels:
            drift.append(f"{key} has labels {actual.get(key)}, the model {labels}")
    drift += [
        f"{key} exists, never created by a writer" for key in actual if key not in model.labels
    ]
    return drift
