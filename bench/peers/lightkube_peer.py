"""Peer: `lightkube` (sync client), list in pages of 500 then watch from its version.

python bench/peers/lightkube_peer.py KUBECONFIG
"""

from __future__ import annotations

import sys

from common import deleted, synced, synced_line
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Pod


def main() -> None:
    kc = Client(config=KubeConfig.from_file(sys.argv[1]), namespace="default")
    cache = {}
    listing = kc.list(Pod, namespace="default", chunk_size=500)
    for p in listing:
        cache[f"{p.metadata.namespace}/{p.metadata.name}"] = p
        synced_line(p.metadata.name)
    synced()
    for op, p in kc.watch(Pod, namespace="default", resource_version=listing.resourceVersion):
        key = f"{p.metadata.namespace}/{p.metadata.name}"
        if op == "DELETED":
            cache.pop(key, None)
            deleted(key)
        else:
            cache[key] = p
            synced_line(p.metadata.name)


if __name__ == "__main__":
    main()
