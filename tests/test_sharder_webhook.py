"""The sharder's assignment webhook, review by review at the webhook server's ASGI edge: a
new object of a ring gets the shard the hash ring names (a controlled one its owner's),
and everything the webhook must not decide is allowed unchanged. The real apiserver's
side is tests/e2e/test_sharder_webhook_e2e.py."""

from __future__ import annotations

import base64
from typing import Any

import jsonpatch
import orjson
import pytest
import trio

from trio_controller.api.resource import CONFIGMAPS, Resource
from trio_controller.config.cluster import ClusterConfig
from trio_controller.programs.sharder.leasekeeper import micro_time
from trio_controller.programs.sharder.leases import shards_of
from trio_controller.programs.sharder.moves import Mover, RingResource
from trio_controller.programs.sharder.namespaces import NamespaceSelector
from trio_controller.programs.sharder.ring import HashRing, key_for_object
from trio_controller.programs.sharder.sharder import Sharder, _Ring
from trio_controller.programs.sharder.webhook import SharderWebhook, webhook_path
from trio_controller.runtime.sharding import shard_label
from trio_controller.runtime.webhooks import WebhookServer
from trio_controller.transport.client import Client

RING = "widget-operator"
LABEL = shard_label(RING)
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
NOW = 1_800_000_000.0
SHARDS = ("r1", "r2", "r3")
HASH_RING = HashRing(SHARDS)


def lease(name: str, *, acquired: float = NOW - 60, renewed: float = NOW) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ops"},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": 15,
            "acquireTime": micro_time(acquired),
            "renewTime": micro_time(renewed),
        },
    }


class World:
    """A real Sharder whose ring state is set by hand (its Leases as the Lease controller
    would show them), behind a real WebhookServer serving the ring's webhook."""

    def __init__(self, leases: list[dict[str, Any]]) -> None:
        client = Client(ClusterConfig(server="http://127.0.0.1:1"))
        self.sharder = Sharder(client, namespace="ops", settle=5.0, now=lambda: NOW)
        self.leases = leases
        self.sharder.shards = lambda ring: shards_of(self.leases, NOW)  # type: ignore[method-assign]
        controlled = RingResource(CONFIGMAPS, frozenset({("example.com", "Widget")}))
        ring = _Ring(RING, resources=(RingResource(WIDGETS), controlled))
        ring.mover = Mover(client, RING)
        self.sharder.rings[RING] = ring
        self.leader = True
        self.counted: list[tuple[str, str, str]] = []
        self.webhook = SharderWebhook(
            self.sharder, lambda: self.leader, lambda *key: self.counted.append(key)
        )
        self.server = WebhookServer("127.0.0.1:0", "/nonexistent")
        self.webhook.serve(self.server, RING)

    async def review(
        self, obj: dict[str, Any], *, resource: Resource = WIDGETS, ring: str = RING,
        operation: str = "CREATE", **extra: Any,
    ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
        """(the response, the object as the apiserver stores it after the patch)."""
        request = {
            "uid": "u1",
            "operation": operation,
            "namespace": "team-a",
            "resource": {"group": resource.group, "version": resource.version,
                         "resource": resource.plural},
            "object": obj,
            **extra,
        }  # fmt: skip
        body = orjson.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        )
        sent: list[bytes] = []
        chunks = [body]

        async def receive() -> dict[str, Any]:
            if chunks:
                return {"type": "http.request", "body": chunks.pop(), "more_body": False}
            await trio.sleep_forever()
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                sent.append(message.get("body", b""))

        length = [(b"content-length", str(len(body)).encode())]
        scope = {"type": "http", "method": "POST", "path": webhook_path(ring),
                 "query_string": b"", "headers": length}  # fmt: skip
        await self.server.app(scope, receive, send)
        response: dict[str, Any] = orjson.loads(b"".join(sent))["response"]
        assert response["allowed"] is True, response
        stored = obj
        if "patch" in response:
            assert response["patchType"] == "JSONPatch"
            ops = orjson.loads(base64.b64decode(response["patch"]))
            stored = jsonpatch.apply_patch(obj, ops)
        return response, stored


def widget(name: str = "w1", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "team-a"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta, "spec": {}}


def desired(name: str) -> str:
    return HASH_RING.shard_for(key_for_object("example.com", "Widget", "team-a", name))


@pytest.fixture
def world() -> World:
    return World([lease(name) for name in SHARDS])


async def test_a_new_widget_is_created_with_the_shard_the_hash_ring_names(world: World) -> None:
    placed = {}
    for i in range(12):
        name = f"w{i}"
        response, stored = await world.review(widget(name, app="x"))
        assert "patch" in response
        assert stored["metadata"]["labels"] == {"app": "x", LABEL: desired(name)}
        placed[name] = stored["metadata"]["labels"][LABEL]
    assert len(set(placed.values())) > 1  # the ring spreads them, not one fixed answer
    assert world.counted == [(RING, "example.com", "widgets")] * 12
    assert world.webhook.assigned == 12


async def test_a_widget_without_labels_and_namespace_gets_both_right(world: World) -> None:
    obj = widget("bare")
    del obj["metadata"]["namespace"]  # the namespace of the request (the URL's) is hashed
    _, stored = await world.review(obj)
    assert stored["metadata"]["labels"] == {LABEL: desired("bare")}


async def test_a_controlled_configmap_gets_its_owner_widgets_shard(world: World) -> None:
    ref = {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w7", "uid": "1",
           "controller": True}  # fmt: skip
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"generateName": "w7-", "namespace": "team-a",
                              "ownerReferences": [ref]}}  # fmt: skip
    _, stored = await world.review(configmap, resource=CONFIGMAPS)
    assert stored["metadata"]["labels"] == {LABEL: desired("w7")}


async def test_a_namespace_the_rings_selector_leaves_out_is_not_assigned(world: World) -> None:
    ring = world.sharder.rings[RING]
    ring.namespace_selector = NamespaceSelector.parse({"matchLabels": {"sharded": "yes"}})
    response, stored = await world.review(widget("outside"))  # team-a is not selected
    assert "patch" not in response and "labels" not in stored["metadata"]
    ring.namespaces.add("team-a")  # the Namespace watch saw team-a come to match
    _, stored = await world.review(widget("inside"))
    assert stored["metadata"]["labels"] == {LABEL: desired("inside")}


async def test_a_dry_run_is_answered_but_not_counted(world: World) -> None:
    _, stored = await world.review(widget("dry"), dryRun=True)
    assert stored["metadata"]["labels"] == {LABEL: desired("dry")}
    assert world.counted == [] and world.webhook.assigned == 0


def unowned_configmap() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "loose", "namespace": "team-a"}}  # fmt: skip


@pytest.mark.parametrize(
    ("case", "obj", "options"),
    [
        ("labelled already", widget("w1", **{LABEL: "r9"}), {}),
        ("an update", widget("w1"), {"operation": "UPDATE"}),
        ("a subresource", widget("w1"), {"subResource": "status"}),
        ("a ring the sharder does not know", widget("w1"), {"ring": "other"}),
        ("a resource not in the ring", widget("w1"),
         {"resource": Resource("example.com", "v1", "gadgets", "Gadget")}),
        ("no name yet", {"kind": "Widget", "metadata": {"generateName": "w-"}}, {}),
        ("a configmap without a controller", unowned_configmap(), {"resource": CONFIGMAPS}),
    ],
)  # fmt: skip
async def test_what_the_webhook_cannot_decide_is_allowed_unchanged(
    world: World, case: str, obj: dict[str, Any], options: dict[str, Any]
) -> None:
    world.webhook.serve(world.server, "other")
    response, stored = await world.review(obj, **options)
    assert "patch" not in response, case
    assert stored == obj and world.counted == []


async def test_a_follower_allows_every_create_unchanged(world: World) -> None:
    world.leader = False
    response, _ = await world.review(widget("w1"))
    assert "patch" not in response


async def test_without_a_ready_shard_the_create_is_unchanged_for_the_watch_to_assign() -> None:
    expired = World([lease(name, renewed=NOW - 20) for name in SHARDS])
    response, _ = await expired.review(widget("w1"))
    assert "patch" not in response


async def test_while_a_joining_shard_settles_the_create_is_left_to_the_watch() -> None:
    joined = World([lease("r1"), lease("r2", acquired=NOW - 1)])
    response, _ = await joined.review(widget("w1"))
    assert "patch" not in response
    joined.leases = [lease("r1"), lease("r2", acquired=NOW - 6)]
    response, stored = await joined.review(widget("w1"))
    assert stored["metadata"]["labels"][LABEL] == HashRing(["r1", "r2"]).shard_for(
        key_for_object("example.com", "Widget", "team-a", "w1")
    )


def test_each_ring_is_served_once_on_the_original_sharders_path(world: World) -> None:
    assert world.webhook.serve(world.server, RING) == f"/webhooks/sharder/controllerring/{RING}"
    assert world.server.paths.count(webhook_path(RING)) == 1
