"""The model apiserver of the sharded simulation: Widgets (metadata only) and Leases, the
writes the sharder and the shards make, and a client that reaches it without HTTP.

    model = ShardModel(checker)
    client = ModelClient(model, name)   # what `Sharder`, `Mover`, `LeaseKeeper`,
                                        # `LeaderElector` and `Shard` call: request_json,
                                        # list_page (metadata-only pages with continue)

Writes follow the apiserver's rules: one resourceVersion counter; a merge patch or PUT
carrying `metadata.resourceVersion` conflicts (409) unless it is the current one; POST
of an existing Lease conflicts; DELETE honours its resourceVersion precondition. Every
write is appended to `log`, which the modelled informers follow with their own lag.

The client's faults: `dead` (the process was killed: every request fails), and a
partition (`partition_until`): requests either fail at once (connection refused) or hang
until the partition heals or the client's request timeout (60 s) passes, as a half-open
connection does.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from typing import Any

import orjson
import trio

from trio_controller import errors

NAMESPACE = "default"
LEASE_NAMESPACE = "shards"
WIDGETS_PATH = "/apis/example.com/v1/widgets"
OBJECT_PREFIX = f"/apis/example.com/v1/namespaces/{NAMESPACE}/widgets/"
LEASES_PREFIX = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
REQUEST_TIMEOUT = 60.0  # the Client's default read timeout


def object_key(name: str) -> str:
    return f"{NAMESPACE}/{name}"


class ShardModel:
    """Widgets by key (`default/<name>`, metadata only) and Leases by name."""

    def __init__(self, on_label_change: Callable[[str, str, str, bool], None]) -> None:
        self.rv = 100
        self.objects: dict[str, dict[str, Any]] = {}  # key -> metadata
        self.keys: list[str] = []  # creation order = key order (names are zero-padded)
        self.leases: dict[str, dict[str, Any]] = {}  # name -> Lease
        self.log: list[tuple[str, str]] = []  # ("obj" | "lease", key), write order
        self.changed = trio.Event()
        self.on_label_change = on_label_change  # (key, old shard, new shard, drain set)
        self.ring = ""  # set by the runner: the label keys below
        self.shard_label = ""
        self.drain_label = ""

    def _wrote(self, kind: str, key: str) -> None:
        self.log.append((kind, key))
        self.changed.set()
        self.changed = trio.Event()

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    # -- Widgets --------------------------------------------------------------------------

    def create(self, name: str) -> str:
        key = object_key(name)
        assert key not in self.objects
        self.objects[key] = {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "resourceVersion": self._next_rv(),
            "labels": {"app": "sim"},
        }
        self.keys.append(key)
        self._wrote("obj", key)
        self.on_label_change(key, "", "", False)
        return key

    def get(self, key: str) -> dict[str, Any] | None:
        """The object as a client reads it (a copy), or None."""
        meta = self.objects.get(key)
        if meta is None:
            return None
        return {"metadata": {**meta, "labels": dict(meta["labels"])}}

    def patch_object(self, key: str, patch: dict[str, Any]) -> dict[str, Any]:
        meta = self.objects.get(key)
        if meta is None:
            raise errors.NotFound(404, "NotFound", f'widgets "{key}" not found')
        new_meta = patch.get("metadata") or {}
        rv = new_meta.get("resourceVersion")
        if rv is not None and rv != meta["resourceVersion"]:
            raise errors.Conflict(409, "Conflict", "the object has been modified")
        labels = dict(meta["labels"])
        for k, v in (new_meta.get("labels") or {}).items():
            if v is None:
                labels.pop(k, None)
            else:
                labels[k] = v
        old_shard = meta["labels"].get(self.shard_label, "")
        new_shard = labels.get(self.shard_label, "")
        meta["labels"] = labels
        meta["resourceVersion"] = self._next_rv()
        self._wrote("obj", key)
        self.on_label_change(key, old_shard, new_shard, self.drain_label in labels)
        return self.get(key)  # type: ignore[return-value]

    def list_page(self, params: dict[str, Any]) -> bytes:
        """A metadata-only page (PartialObjectMetadataList) in key order."""
        limit = int(params.get("limit") or 0) or len(self.keys)
        start = 0
        if token := params.get("continue"):
            start = int(orjson.loads(base64.b64decode(token))["i"])
        keys = self.keys[start : start + limit]
        items = [self.get(k) for k in keys]
        meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
        if start + limit < len(self.keys):
            meta["continue"] = base64.b64encode(orjson.dumps({"i": start + limit})).decode()
        return orjson.dumps(
            {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": items,
            }
        )

    # -- Leases ---------------------------------------------------------------------------

    def lease(self, name: str) -> dict[str, Any]:
        lease = self.leases.get(name)
        if lease is None:
            raise errors.NotFound(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
        return orjson.loads(orjson.dumps(lease))

    def _check_rv(self, name: str, body: dict[str, Any]) -> None:
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv is not None and rv != self.leases[name]["metadata"]["resourceVersion"]:
            raise errors.Conflict(409, "Conflict", "the object has been modified")

    def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.leases:
            raise errors.Conflict(409, "AlreadyExists", f'leases "{name}" already exists')
        lease = orjson.loads(orjson.dumps(body))
        lease["metadata"].update(namespace=LEASE_NAMESPACE, resourceVersion=self._next_rv())
        lease["metadata"].setdefault("labels", {})
        self.leases[name] = lease
        self._wrote("lease", name)
        return self.lease(name)

    def put_lease(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.lease(name)
        self._check_rv(name, body)
        lease = orjson.loads(orjson.dumps(body))
        lease["metadata"]["resourceVersion"] = self._next_rv()
        self.leases[name] = lease
        self._wrote("lease", name)
        return self.lease(name)

    def patch_lease(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.lease(name)
        self._check_rv(name, body)
        lease = self.leases[name]
        labels = lease["metadata"].setdefault("labels", {})
        for k, v in ((body.get("metadata") or {}).get("labels") or {}).items():
            if v is None:
                labels.pop(k, None)
            else:
                labels[k] = v
        lease["metadata"]["resourceVersion"] = self._next_rv()
        self._wrote("lease", name)
        return self.lease(name)

    def delete_lease(self, name: str, body: dict[str, Any] | None) -> None:
        self.lease(name)
        preconditions = (body or {}).get("preconditions") or {}
        self._check_rv(name, {"metadata": preconditions})
        del self.leases[name]
        self._wrote("lease", name)


class ModelClient:
    """The `Client` methods the sharder and the shard side call, answered by the model
    after a seeded latency, with this process's faults."""

    def __init__(self, model: ShardModel, name: str, rng: random.Random) -> None:
        self.model = model
        self.name = name
        self.rng = rng
        self.dead = False
        self.partition_until = -1.0
        self.partition_hangs = False
        self.requests = 0

    async def _reach(self) -> None:
        """Wait the request's latency; raise as a dead or partitioned client does."""
        await trio.sleep(self.rng.choice((0.0, 0.0, 0.001, 0.01, 0.05)))
        if self.dead:
            raise errors.ConnectionFailed(f"{self.name}: the process is gone")
        now = trio.current_time()
        if now < self.partition_until:
            if self.partition_hangs:  # a half-open connection: no answer until the timeout
                await trio.sleep(min(self.partition_until - now, REQUEST_TIMEOUT))
                if trio.current_time() < self.partition_until or self.dead:
                    raise errors.Timeout(f"{self.name}: timed out")
            else:
                raise errors.ConnectionFailed(f"{self.name}: connection refused")

    async def request_json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Any = None,
        content_type: str = "application/json",
        accept: str | None = None,
    ) -> Any:
        self.requests += 1
        await self._reach()
        model = self.model
        if path.startswith(OBJECT_PREFIX):
            assert method == "PATCH" and content_type.startswith("application/merge"), method
            result = model.patch_object(object_key(path[len(OBJECT_PREFIX) :]), body)
        elif path == LEASES_PREFIX:
            assert method == "POST", method
            result = model.create_lease(body)
        elif path.startswith(LEASES_PREFIX + "/"):
            name = path[len(LEASES_PREFIX) + 1 :]
            if method == "GET":
                result = model.lease(name)
            elif method == "PUT":
                result = model.put_lease(name, body)
            elif method == "PATCH":
                result = model.patch_lease(name, body)
            elif method == "DELETE":
                model.delete_lease(name, body)
                result = None
            else:
                raise AssertionError(method)
        else:
            raise AssertionError(f"the model does not serve {method} {path}")
        await trio.sleep(self.rng.choice((0.0, 0.0, 0.001, 0.01)))  # the answer's way back
        return result

    async def list_page(self, path: str, params: Any = None, *, accept: str | None = None) -> bytes:
        self.requests += 1
        await self._reach()
        assert path == WIDGETS_PATH, path
        assert accept and "PartialObjectMetadataList" in accept, accept
        return self.model.list_page(dict(params or {}))
