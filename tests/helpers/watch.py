"""Pods, lists and watch lines as the apiserver sends them, for scripted-server tests."""

from __future__ import annotations

from typing import Any

import orjson
from streamserver import Reply


def pod(name: str, rv: int, ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "resourceVersion": str(rv),
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def pod_list(rv: int, *pods: dict[str, Any], cont: str = "") -> Reply:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if cont:
        meta["continue"] = cont
    return Reply.json(
        {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": list(pods)}
    )


def event(kind: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def bookmark(rv: int, initial_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return event("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": meta})


def error_event(code: int, reason: str, message: str) -> bytes:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
              "reason": reason, "message": message}  # fmt: skip
    return event("ERROR", status)
