"""The cache keeps objects compressed by default, and reads give back exactly what came in."""

from __future__ import annotations

import random
from typing import Any

import orjson

from trio_controller.cache.informer import Informer, InformerOptions
from trio_controller.config import ClusterConfig
from trio_controller.native import ListAccumulator, Store
from trio_controller.programs.pods.cli import _parser
from trio_controller.transport.client import Client

PODS = "/api/v1/namespaces/default/pods"


def varied_pod(i: int, rng: random.Random) -> dict[str, Any]:
    """Pods that share structure but differ in names, labels, sizes and text."""
    app = rng.choice(["web", "db", "cache", "ünïcode-✓", "x" * rng.randint(1, 300)])
    labels = {
        f"k{j}": rng.choice(["a", "bb", app, str(rng.random())]) for j in range(rng.randint(0, 6))
    }
    return {
        "metadata": {
            "name": f"{app[:40]}-{i}",
            "namespace": f"ns-{i % 3}",
            "uid": f"{rng.getrandbits(128):032x}",
            "resourceVersion": str(100 + i),
            "labels": labels,
            "annotations": {
                "note": "".join(rng.choice('ab{}"\\é') for _ in range(rng.randint(0, 200)))
            },
            "managedFields": [
                {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:x": {}}}
            ],
        },
        "spec": {
            "nodeName": f"node-{i % 4}",
            "containers": [
                {
                    "name": "c",
                    "image": f"registry/{app[:20]}:{i % 5}",
                    "args": ["-v"] * rng.randint(0, 50),
                }
            ],
            # Now and then an object far larger than the dictionary's reach (64 KiB).
            "blob": rng.randbytes(rng.choice([0, 5, 45_000])).hex(),
        },
        "status": {"phase": rng.choice(["Running", "Pending"]), "podIP": f"10.0.{i % 250}.{i % 7}"},
    }


def filled(store: Store, objects: list[dict[str, Any]]) -> Store:
    """`store` after a relist of the first half of `objects` and watch upserts of the rest."""
    half = len(objects) // 2
    acc = ListAccumulator(strip_managed_fields=True, compress=store.compress)
    page = {"kind": "PodList", "metadata": {"resourceVersion": "9"}, "items": objects[:half]}
    acc.feed_page(orjson.dumps(page))
    store.replace(acc, "9")
    for obj in objects[half:]:
        store.upsert(orjson.dumps(obj))
    store.add_index("node", "spec.nodeName")
    return store


def test_a_compressed_cache_reads_back_every_object_byte_for_byte_as_a_plain_one() -> None:
    rng = random.Random(17)
    objects = [varied_pod(i, rng) for i in range(300)]
    plain = filled(Store(compress=False), objects)
    packed = filled(Store(compress=True), objects)
    assert sorted(packed.list_keys()) == sorted(plain.list_keys())
    for key in plain.list_keys():
        assert packed.get_raw(key) == plain.get_raw(key), key
        assert packed.labels(key) == plain.labels(key)
        assert packed.uid(key) == plain.uid(key)
        assert packed.object_resource_version(key) == plain.object_resource_version(key)
    for node in plain.index_values("node"):
        assert packed.by_index("node", node) == plain.by_index("node", node)
    # Snapshots hold plain JSON either way: each loads into the other kind of store.
    for snap, target in ((packed.snapshot(), Store()), (plain.snapshot(), Store(compress=True))):
        assert target.restore(snap) == len(objects)
        for key in plain.list_keys():
            assert target.get_raw(key) == plain.get_raw(key)


def test_an_informer_with_default_options_caches_compressed_and_restores_a_plain_snapshot() -> None:
    client = Client(ClusterConfig(server="http://127.0.0.1:1"))
    assert InformerOptions().compress
    informer = Informer(client, PODS, InformerOptions())
    assert informer.store.compress
    assert not Informer(client, PODS, InformerOptions(compress=False)).store.compress
    rng = random.Random(3)
    objects = [varied_pod(i, rng) for i in range(40)]
    plain = filled(Store(), objects)
    assert informer.restore(plain.snapshot()) == len(objects)
    for key in plain.list_keys():
        assert informer.store.get(key) == plain.get(key)


def test_the_pod_program_compresses_its_cache_unless_told_not_to() -> None:
    assert _parser().parse_args([]).compress_cache is True
    assert _parser().parse_args(["--compress-cache"]).compress_cache is True
    assert _parser().parse_args(["--no-compress-cache"]).compress_cache is False
