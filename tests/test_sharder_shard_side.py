"""The shard side (runtime/sharding.py): its flags and options, its label selector, and
the reconcile wrapper that skips other shards' objects and acknowledges drains.

The wrapper's one write (the drain acknowledgement) goes to a recording client here; the
same handshake against the real apiserver is in tests/e2e/test_sharding_e2e.py."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from trio_controller import Resource, errors
from trio_controller.runtime.flags import add_shard_flags
from trio_controller.runtime.sharding import (
    LABEL_CONTROLLER_RING,
    Shard,
    ShardOptions,
    drain_label,
    shard_label,
    shard_options_from_args,
)

WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
RING = "widget-operator"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_shard_flags(parser)
    return parser.parse_args(argv)


class Recorder:
    """Answers every request with the patched object; remembers what was asked."""

    def __init__(self, fail: errors.ApiError | None = None) -> None:
        self.requests: list[tuple[str, str, Any, str]] = []
        self.fail = fail

    async def request_json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        self.requests.append((method, path, body, kw.get("content_type", "")))
        if self.fail is not None:
            raise self.fail
        return body


def widget(name: str, labels: dict[str, str], rv: str = "7") -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "resourceVersion": rv, "labels": labels}
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta}


def shard_for(client: Any, name: str = "r1") -> Shard:
    return Shard(client, ShardOptions(RING, name, "ops"))


# -- flags and options ------------------------------------------------------------------


def test_the_three_flags_make_the_shard_options() -> None:
    args = parse(
        "--controller-ring", RING, "--shard-name", "r1", "--shard-lease-namespace", "ops"
    )  # fmt: skip
    assert shard_options_from_args(args) == ShardOptions(RING, "r1", "ops")


def test_without_a_controller_ring_nothing_is_sharded() -> None:
    assert shard_options_from_args(parse()) is None
    assert Shard.from_args(Recorder(), parse()) is None  # type: ignore[arg-type]


def test_the_shard_name_defaults_to_the_pod_name_then_the_hostname(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", "widget-operator-5f7d-abcde")
    options = shard_options_from_args(parse("--controller-ring", RING), "ctx-ns")
    assert options is not None
    assert options.shard_name == "widget-operator-5f7d-abcde"
    assert options.shard_lease_namespace == "ctx-ns"
    monkeypatch.delenv("POD_NAME")
    monkeypatch.setattr("socket.gethostname", lambda: "node-1")
    options = shard_options_from_args(parse("--controller-ring", RING))
    assert options is not None and options.shard_name == "node-1"
    assert options.shard_lease_namespace == "default"


@pytest.mark.parametrize("ring", ["Widget", "x" * 64, "", "a_b"])
def test_a_ring_name_that_cannot_be_in_a_label_key_is_one_clear_error(ring: str) -> None:
    with pytest.raises(errors.TrioControllerError, match="ControllerRing name"):
        ShardOptions(ring, "r1", "ops")


def test_a_shard_name_that_cannot_be_a_label_value_is_one_clear_error() -> None:
    with pytest.raises(errors.TrioControllerError, match="valid label value"):
        ShardOptions(RING, "r1/evil", "ops")


def test_the_selector_and_labels_are_the_protocols() -> None:
    shard = shard_for(Recorder())
    assert shard.label_selector == "shard.alpha.sharding.timebertt.dev/widget-operator=r1"
    assert drain_label(RING) == "drain.alpha.sharding.timebertt.dev/widget-operator"
    assert shard.lease.labels == {LABEL_CONTROLLER_RING: RING}
    assert shard.lease.identity == shard.lease.name == "r1"
    assert shard.lease.lease_duration == 15.0


# -- the reconcile wrapper -----------------------------------------------------------------


async def test_an_assigned_object_is_reconciled_and_nothing_is_written() -> None:
    client = Recorder()
    shard = shard_for(client)
    store = {"ns/a": widget("a", {shard_label(RING): "r1"})}
    seen: list[str] = []

    def reconcile(key: str) -> float:
        seen.append(key)
        return 30.0

    wrapped = shard.sharded(reconcile, store, WIDGETS)
    assert await wrapped("ns/a") == 30.0
    assert seen == ["ns/a"] and client.requests == []


async def test_objects_gone_from_the_cache_or_of_another_shard_are_not_reconciled() -> None:
    shard = shard_for(Recorder())
    store = {"ns/b": widget("b", {shard_label(RING): "r2"}), "ns/c": widget("c", {})}
    seen: list[str] = []

    async def reconcile(key: str) -> None:
        seen.append(key)

    wrapped = shard.sharded(reconcile, store, WIDGETS)
    for key in ("ns/gone", "ns/b", "ns/c"):
        assert await wrapped(key) is None
    assert seen == []


async def test_a_drain_removes_both_labels_under_the_read_version_and_skips_the_reconcile() -> None:
    client = Recorder()
    shard = shard_for(client)
    labels = {shard_label(RING): "r1", drain_label(RING): "true", "app": "x"}
    store = {"ns/a": widget("a", labels, rv="42")}
    seen: list[str] = []
    wrapped = shard.sharded(seen.append, store, WIDGETS)
    assert await wrapped("ns/a") is None
    assert seen == []
    ((method, path, body, content_type),) = client.requests
    assert (method, path) == ("PATCH", "/apis/example.com/v1/namespaces/ns/widgets/a")
    assert content_type == "application/merge-patch+json"
    assert body == {
        "metadata": {
            "resourceVersion": "42",
            "labels": {shard_label(RING): None, drain_label(RING): None},
        }
    }
    assert shard.drains == 1


async def test_a_drain_that_meets_a_newer_object_fails_so_the_key_is_retried() -> None:
    shard = shard_for(Recorder(fail=errors.Conflict(409, "Conflict")))
    store = {"ns/a": widget("a", {shard_label(RING): "r1", drain_label(RING): ""})}
    wrapped = shard.sharded(lambda key: None, store, WIDGETS)
    with pytest.raises(errors.Conflict):
        await wrapped("ns/a")
    assert shard.drains == 0


def test_the_predicate_passes_a_drain_whatever_the_other_predicates_say() -> None:
    shard = shard_for(Recorder())
    never = shard.predicate(lambda old, new: False)
    drained = widget("a", {shard_label(RING): "r1", drain_label(RING): "true"})
    assigned = widget("a", {shard_label(RING): "r1"})
    elsewhere = widget("a", {shard_label(RING): "r2"})
    assert never(assigned, drained)
    assert not never(None, assigned)
    assert shard.predicate()(None, assigned)
    assert not shard.predicate()(None, elsewhere)
