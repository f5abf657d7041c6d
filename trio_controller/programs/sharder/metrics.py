"""The sharder's own metrics, with the original sharder's names (`controller_sharding_*`):

    controller_sharding_assignments_total{controllerring,group,resource}  labelled unassigned
    controller_sharding_movements_total{controllerring,group,resource}    moved by a resync
    controller_sharding_drains_total{controllerring,group,resource}       drained by a resync
    controller_sharding_controllerring_status_shards{controllerring}
    controller_sharding_controllerring_status_available_shards{controllerring}
    controller_sharding_shard_state{controllerring,shard,state}           1 for its state

Read from the sharder at scrape time (a `prometheus_client` collector).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client import Metric

    from trio_controller.programs.sharder.sharder import Sharder

__all__ = ["SharderCollector"]

PREFIX = "controller_sharding"
COUNTERS = {
    "assignments": "Objects assigned by the sharder per ControllerRing and GroupResource",
    "movements": "Objects moved by the sharder's resyncs per ControllerRing and GroupResource",
    "drains": "Objects drained by the sharder's resyncs per ControllerRing and GroupResource",
}


class SharderCollector(Collector):
    """`registry.register(SharderCollector(sharder))`."""

    def __init__(self, sharder: Sharder) -> None:
        self.sharder = sharder

    def collect(self) -> Iterator[Metric]:
        labels = ["controllerring", "group", "resource"]
        counters = {
            kind: CounterMetricFamily(f"{PREFIX}_{kind}", help_text, labels=labels)
            for kind, help_text in COUNTERS.items()
        }
        shards = GaugeMetricFamily(
            f"{PREFIX}_controllerring_status_shards",
            "Shard Leases of a ControllerRing",
            labels=["controllerring"],
        )
        available = GaugeMetricFamily(
            f"{PREFIX}_controllerring_status_available_shards",
            "Ready shards of a ControllerRing",
            labels=["controllerring"],
        )
        states = GaugeMetricFamily(
            f"{PREFIX}_shard_state",
            "The state of a shard's Lease (1 for the state it is in)",
            labels=["controllerring", "shard", "state"],
        )
        for name, ring in sorted(self.sharder.rings.items()):
            for (kind, group, resource), count in sorted(ring.mover.counts.items()):
                counters[kind].add_metric([name, group, resource], count)
            found = self.sharder.shards(name)
            shards.add_metric([name], len(found))
            available.add_metric([name], sum(1 for s in found.values() if s.state.on_ring))
            for shard in sorted(found.values(), key=lambda s: s.name):
                states.add_metric([name, shard.name, shard.state.label], 1)
        yield from counters.values()
        yield from (shards, available, states)
