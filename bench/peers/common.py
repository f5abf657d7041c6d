"""What every Python peer shares: the server URL from a kubeconfig, and the output.

Every peer keeps a cache keyed by namespace/name and writes one line per event (and per
listed pod) to stdout, flushed per line like client-go's example, and logs
`Caches are synced` to stderr once its first list is in the cache.
"""

from __future__ import annotations

import ssl
import sys

import yaml

__all__ = ["deleted", "server_url", "server_verify", "synced", "synced_line"]


def server_url(kubeconfig: str) -> str:
    with open(kubeconfig) as f:
        return yaml.safe_load(f)["clusters"][0]["cluster"]["server"]


def server_verify(kubeconfig: str) -> ssl.SSLContext | bool:
    """An SSLContext for the cluster's `certificate-authority`, or True (system CAs)."""
    with open(kubeconfig) as f:
        ca = yaml.safe_load(f)["clusters"][0]["cluster"].get("certificate-authority")
    return ssl.create_default_context(cafile=ca) if ca else True


def synced_line(name: str) -> None:
    sys.stdout.write(f"Sync/Add/Update for Pod {name}\n")
    sys.stdout.flush()


def deleted(key: str) -> None:
    sys.stdout.write(f"Pod {key} does not exist anymore\n")
    sys.stdout.flush()


def synced() -> None:
    sys.stderr.write("Caches are synced\n")
    sys.stderr.flush()
