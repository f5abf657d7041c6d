"""The consistent-hash ring: balance, minimal moves, and the hash keys of objects."""

from __future__ import annotations

from collections import Counter

import pytest

from trio_controller.programs.sharder.ring import HashRing, controller_key, key_for_object


def widget_keys(n: int) -> list[str]:
    return [key_for_object("example.com", "Widget", "default", f"widget-{i}") for i in range(n)]


def placement(ring: HashRing, keys: list[str]) -> dict[str, str]:
    return {key: ring.shard_for(key) for key in keys}


def test_no_shard_gets_over_twice_its_fair_share_of_60_widgets_on_3_shards() -> None:
    ring = HashRing(["r1", "r2", "r3"])
    counts = Counter(placement(ring, widget_keys(60)).values())
    assert set(counts) == {"r1", "r2", "r3"}
    assert max(counts.values()) <= 2 * 60 / 3


@pytest.mark.parametrize("shards", [2, 3, 5, 8])
def test_at_scale_every_shard_is_within_a_third_of_its_fair_share(shards: int) -> None:
    ring = HashRing([f"shard-{i}" for i in range(shards)])
    n = 20_000
    counts = Counter(placement(ring, widget_keys(n)).values())
    fair = n / shards
    assert len(counts) == shards
    assert max(counts.values()) < 1.34 * fair
    assert min(counts.values()) > 0.66 * fair


def test_a_fourth_shard_takes_about_a_quarter_of_the_objects_and_moves_no_others() -> None:
    keys = widget_keys(6000)
    before = placement(HashRing(["r1", "r2", "r3"]), keys)
    after = placement(HashRing(["r1", "r2", "r3", "r4"]), keys)
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] == "r4" for k in moved)  # only to the new shard
    assert 0.15 < len(moved) / len(keys) < 0.35


def test_removing_a_shard_moves_only_its_own_objects() -> None:
    keys = widget_keys(6000)
    before = placement(HashRing(["r1", "r2", "r3", "r4"]), keys)
    after = placement(HashRing(["r1", "r2", "r4"]), keys)
    for key in keys:
        if before[key] != "r3":
            assert after[key] == before[key]
        else:
            assert after[key] in {"r1", "r2", "r4"}


def test_the_ring_is_the_same_whatever_order_the_shards_come_in() -> None:
    keys = widget_keys(500)
    assert placement(HashRing(["r3", "r1", "r2"]), keys) == placement(
        HashRing(["r1", "r2", "r3"]), keys
    )


def test_an_empty_ring_places_nothing() -> None:
    ring = HashRing([])
    assert not ring
    assert ring.shard_for("example.com/Widget/default/a") == ""


def test_the_hash_keys_are_the_original_sharders() -> None:
    assert key_for_object("example.com", "Widget", "ns", "w1") == "example.com/Widget/ns/w1"
    assert key_for_object("", "Namespace", None, "kube-system") == "/Namespace//kube-system"


def test_a_controlled_object_hashes_as_its_controller_so_it_shares_its_shard() -> None:
    configmap = {
        "name": "w1-config",
        "namespace": "ns",
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "Secret", "name": "other"},
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w1", "controller": True},
        ],
    }
    key = controller_key(configmap)
    assert key == key_for_object("example.com", "Widget", "ns", "w1")
    ring = HashRing(["a", "b", "c", "d"])
    owner = key_for_object("example.com", "Widget", "ns", "w1")
    assert ring.shard_for(key) == ring.shard_for(owner)
    assert controller_key(configmap, owners=[("example.com", "Widget")]) == key
    assert controller_key(configmap, owners=[("apps", "Deployment")]) == ""


def test_an_object_without_a_controller_has_no_key() -> None:
    owned = {"name": "x", "namespace": "ns", "ownerReferences": [{"apiVersion": "v1",
             "kind": "Pod", "name": "p"}]}  # fmt: skip
    assert controller_key(owned) == ""
    assert controller_key({"name": "y", "namespace": "ns"}) == ""
