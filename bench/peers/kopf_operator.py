"""Benchmark peer: the widget example's work with kopf 1.45 (bench/operator_bench.py).

    KUBECONFIG=KC kopf run bench/peers/kopf_operator.py --namespace NS --standalone

For every Widget (example.com/v1), as kopf's documentation writes an operator: one
handler on resume, create and spec updates, which

- creates the ConfigMap `<name>-config` (`data.message = spec.message`; `kopf.adopt`
  sets the controller ownerReference) with the `kubernetes` client; when it exists
  (409), reads it and fixes its message if it differs (so from cold: one write, as ours);
- sets `status.observedGeneration` and a `Ready` condition through kopf's `patch`
  (kopf writes it with its own progress annotation at the end of the handling);
- posts one `Normal` `Reconciled` Event (`kopf.info`).

A delete handler (one `Cleanup` Event) makes kopf hold its finalizer on every Widget,
as the widget example holds `example.com/cleanup`. kopf has no "owns": the ConfigMaps
are not watched. Every handler call prints `Reconciled Widget <namespace>/<name>`.
"""

from __future__ import annotations

import datetime
import sys
from typing import Any

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "example.com", "v1", "widgets"


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def reconcile(
    body: kopf.Body, spec: kopf.Spec, name: str, namespace: str, patch: kopf.Patch, **_: Any
) -> None:
    message = str(spec.get("message") or "")
    cm_name = f"{name}-config"
    api = kubernetes.client.CoreV1Api()
    cm: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": cm_name},
        "data": {"message": message},
    }
    kopf.adopt(cm, owner=body)
    change = f"created ConfigMap {cm_name}"
    try:
        api.create_namespaced_config_map(namespace, cm)
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
        current = api.read_namespaced_config_map(cm_name, namespace)
        change = ""
        if (current.data or {}).get("message") != message:
            api.patch_namespaced_config_map(cm_name, namespace, {"data": {"message": message}})
            change = f"updated ConfigMap {cm_name}"
    generation = body["metadata"].get("generation", 0)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "ConfigMapReady",
            "message": f"ConfigMap {cm_name} holds spec.message",
            "lastTransitionTime": now,
            "observedGeneration": generation,
        }
    ]
    note = f"{change}; " if change else ""
    kopf.info(body, reason="Reconciled", message=f"{note}status: observedGeneration {generation}")
    # One write per line: handlers run in threads, and print() writes the newline apart.
    sys.stdout.write(f"Reconciled Widget {namespace}/{name}\n")
    sys.stdout.flush()


@kopf.on.delete(GROUP, VERSION, PLURAL)
def cleanup(body: kopf.Body, name: str, **_: Any) -> None:
    kopf.info(body, reason="Cleanup", message=f"Widget {name} deleted")
