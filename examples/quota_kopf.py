"""examples/quota_operator.py written with kopf 1.45 (bench-only: kopf is not a dependency).

    kopf run examples/quota_kopf.py --all-namespaces --standalone

A ResourceQuota `default-quota` for every Namespace labelled
quota.example.com/enabled=true, owned by it, put back when edited, created again when
deleted, with a `Normal` Event about the Namespace (`QuotaCreated` or `QuotaRestored`)
and a `Set quota of <namespace>` line on stdout. bench/operator_bench.py (`quota`) runs
it through the same checks as tests/e2e/test_quota_operator_e2e.py runs ours.
"""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes

LABEL = "quota.example.com/enabled"
QUOTA = "default-quota"
HARD = {"pods": "10", "requests.cpu": "4", "requests.memory": "8Gi"}


def ensure_quota(namespace: dict[str, Any] | kopf.Body) -> None:
    name = namespace["metadata"]["name"]
    api = kubernetes.client.CoreV1Api()
    try:
        quota = api.read_namespaced_resource_quota(QUOTA, name)
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise
        quota = None
    if quota is not None and quota.spec.hard == HARD:
        return
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": QUOTA, "namespace": name},
        "spec": {"hard": HARD},
    }
    kopf.adopt(body, owner=namespace)  # ownerReference, and the owner's labels
    if quota is None:
        api.create_namespaced_resource_quota(name, body)
        reason = "QuotaCreated"
    else:
        api.replace_namespaced_resource_quota(QUOTA, name, body)
        reason = "QuotaRestored"
    note = f"ResourceQuota {QUOTA}: {', '.join(f'{k}={v}' for k, v in HARD.items())}"
    kopf.info(namespace, reason=reason, message=note)
    print(f"Set quota of {name}", flush=True)


@kopf.on.resume("namespaces", labels={LABEL: "true"})
@kopf.on.create("namespaces", labels={LABEL: "true"})
@kopf.on.update("namespaces", labels={LABEL: "true"})
def namespace_changed(body: kopf.Body, **_: Any) -> None:
    ensure_quota(body)


@kopf.on.event("resourcequotas", labels={LABEL: "true"})
def quota_changed(type: str, body: kopf.Body, **_: Any) -> None:
    if body["metadata"]["name"] != QUOTA:
        return
    if type != "DELETED" and body.get("spec", {}).get("hard") == HARD:
        return
    api = kubernetes.client.CoreV1Api()
    try:
        namespace = api.read_namespace(body["metadata"]["namespace"])
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return
        raise
    if (namespace.metadata.labels or {}).get(LABEL) != "true":
        return
    ensure_quota(api.api_client.sanitize_for_serialization(namespace))
