"""Peer: `lightkube` (sync client), only the initial list: pages of 500 into a dict, then
`Caches are synced (N objects)` on stderr and exit. No line per pod (bench/sync_bench.py
times process spawn to that line; lightkube_peer.py is the list+watch peer of the figures).

python bench/peers/lightkube_sync.py KUBECONFIG NAMESPACE
"""

from __future__ import annotations

import sys

from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Pod


def main() -> None:
    kubeconfig, namespace = sys.argv[1], sys.argv[2]
    client = Client(config=KubeConfig.from_file(kubeconfig), namespace=namespace)
    cache = {}
    for p in client.list(Pod, namespace=namespace, chunk_size=500):
        cache[f"{p.metadata.namespace}/{p.metadata.name}"] = p
    sys.stderr.write(f"Caches are synced ({len(cache)} objects)\n")
    sys.stderr.flush()


if __name__ == "__main__":
    main()
