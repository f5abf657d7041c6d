"""The consistent-hash ring: which shard an object belongs to, by its hash key.

    ring = HashRing(["r1", "r2", "r3"])                 # 100 virtual nodes per shard
    ring.shard_for(key_for_object("example.com", "Widget", "default", "w1"))  # "r2"

Each shard gets `tokens_per_node` tokens: xxHash64 of `<shard><i>` for i < tokens. A key
goes to the shard of the first token at or after xxHash64(key), wrapping round. These
are the original sharder's hash, token names and count, so both sharders place an object
on the same shard. Adding a shard moves only the keys its tokens take over (about 1/N of
them); removing one moves only its own keys.

Keys: `<group>/<kind>/<namespace>/<name>` of the object itself for a ring's resources,
of its controller (the ownerReference with `controller: true`) for controlled resources,
so a Widget's ConfigMaps land on the Widget's shard. `generateName` cannot be used for
ring resources that nothing controls (the name is the key).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Any

import xxhash

__all__ = [
    "DEFAULT_TOKENS_PER_NODE",
    "HashRing",
    "controller_key",
    "key_for_object",
]

DEFAULT_TOKENS_PER_NODE = 100


def _hash(text: str) -> int:
    return xxhash.xxh64_intdigest(text.encode())


class HashRing:
    """A ring over `nodes` (shard names); immutable: build a new one when they change."""

    def __init__(self, nodes: Iterable[str] = (), tokens_per_node: int = 0) -> None:
        self.tokens_per_node = tokens_per_node if tokens_per_node > 0 else DEFAULT_TOKENS_PER_NODE
        self.nodes = tuple(sorted(set(nodes)))
        owner: dict[int, str] = {}
        for node in self.nodes:
            for i in range(self.tokens_per_node):
                owner[_hash(f"{node}{i}")] = node
        self._tokens = sorted(owner)
        self._owner = owner

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def __repr__(self) -> str:
        return f"HashRing({list(self.nodes)!r})"

    def shard_for(self, key: str) -> str:
        """The shard `key` belongs to; "" on an empty ring."""
        if not self._tokens:
            return ""
        i = bisect.bisect_left(self._tokens, _hash(key))
        if i == len(self._tokens):
            i = 0
        return self._owner[self._tokens[i]]


def key_for_object(group: str, kind: str, namespace: str | None, name: str) -> str:
    """The hash key of an object of a ring's resource (empty namespace if cluster-scoped)."""
    return f"{group}/{kind}/{namespace or ''}/{name}"


def controller_key(
    metadata: Mapping[str, Any], owners: Iterable[tuple[str, str]] | None = None
) -> str:
    """The hash key of the controller of the object with `metadata`: "" if it has no
    ownerReference with `controller: true`, or (with `owners`, (group, kind) pairs) if
    its controller is of none of those kinds."""
    for ref in metadata.get("ownerReferences") or ():
        if not ref.get("controller"):
            continue
        api_version, kind, name = ref.get("apiVersion") or "", ref.get("kind"), ref.get("name")
        if not (api_version and kind and name):
            return ""
        group = api_version.rpartition("/")[0]
        if owners is not None and (group, kind) not in set(owners):
            return ""
        return key_for_object(group, kind, metadata.get("namespace"), name)
    return ""
