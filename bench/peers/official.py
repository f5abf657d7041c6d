"""Peer: the official `kubernetes` client, watch.Watch over list_namespaced_pod (models).

    python bench/peers/official.py KUBECONFIG [--raw]

`--raw`: `_preload_content=False` and orjson dicts instead of models (list and watch).
"""

from __future__ import annotations

import sys

import orjson
from common import deleted, synced, synced_line
from kubernetes import client, config, watch


def models(v1: client.CoreV1Api) -> None:
    cache = {}
    cont = None
    while True:
        page = v1.list_namespaced_pod("default", limit=500, _continue=cont)
        for p in page.items:
            cache[f"{p.metadata.namespace}/{p.metadata.name}"] = p
            synced_line(p.metadata.name)
        cont = page.metadata._continue
        if not cont:
            break
    synced()
    rv = page.metadata.resource_version
    w = watch.Watch()
    for ev in w.stream(
        v1.list_namespaced_pod, "default", resource_version=rv, allow_watch_bookmarks=True
    ):
        if ev["type"] == "BOOKMARK":
            continue
        p = ev["object"]
        key = f"{p.metadata.namespace}/{p.metadata.name}"
        if ev["type"] == "DELETED":
            cache.pop(key, None)
            deleted(key)
        else:
            cache[key] = p
            synced_line(p.metadata.name)


def raw(v1: client.CoreV1Api) -> None:
    cache = {}
    cont = None
    while True:
        resp = v1.list_namespaced_pod("default", limit=500, _continue=cont, _preload_content=False)
        page = orjson.loads(resp.data)
        for p in page["items"]:
            m = p["metadata"]
            cache[f"{m['namespace']}/{m['name']}"] = p
            synced_line(m["name"])
        cont = page["metadata"].get("continue")
        if not cont:
            break
    synced()
    rv = page["metadata"]["resourceVersion"]
    resp = v1.list_namespaced_pod(
        "default",
        watch=True,
        resource_version=rv,
        allow_watch_bookmarks=True,
        _preload_content=False,
    )
    buf = b""
    for chunk in resp.stream(65536):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            ev = orjson.loads(line)
            if ev["type"] == "BOOKMARK":
                continue
            m = ev["object"]["metadata"]
            key = f"{m['namespace']}/{m['name']}"
            if ev["type"] == "DELETED":
                cache.pop(key, None)
                deleted(key)
            else:
                cache[key] = ev["object"]
                synced_line(m["name"])


def main() -> None:
    config.load_kube_config(config_file=sys.argv[1])
    v1 = client.CoreV1Api()
    (raw if "--raw" in sys.argv else models)(v1)


if __name__ == "__main__":
    main()
