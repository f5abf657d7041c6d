"""The `ControllerRing` CRD (`sharding.timebertt.dev/v1alpha1`, cluster-scoped), as the
original sharder defines it, and its installation when the cluster lacks it.

    apiVersion: sharding.timebertt.dev/v1alpha1
    kind: ControllerRing
    metadata: {name: widget-operator}          # at most 63 characters
    spec:
      resources:
      - group: example.com
        resource: widgets
        controlledResources: [{group: "", resource: configmaps}]
    status: {shards: 3, availableShards: 3, conditions: [{type: Ready, ...}]}
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from trio_controller import errors
from trio_controller.api.resource import CUSTOM_RESOURCE_DEFINITIONS, Resource
from trio_controller.api.verbs import Api
from trio_controller.transport.client import Client

__all__ = ["CONTROLLER_RINGS", "CRD_NAME", "controller_ring_crd", "ensure_crd"]

log = logging.getLogger(__name__)

CONTROLLER_RINGS = Resource(
    "sharding.timebertt.dev", "v1alpha1", "controllerrings", "ControllerRing", namespaced=False
)
CRD_NAME = "controllerrings.sharding.timebertt.dev"
ESTABLISH_TIMEOUT = 60.0

_GROUP_RESOURCE = {
    "type": "object",
    "required": ["group", "resource"],
    "properties": {"group": {"type": "string"}, "resource": {"type": "string"}},
}


def _column(name: str, type: str, path: str) -> dict[str, str]:
    return {"name": name, "type": type, "jsonPath": path}


def controller_ring_crd() -> dict[str, Any]:
    """The CustomResourceDefinition, as a dict."""
    ring_resource = {
        "type": "object",
        "required": ["group", "resource"],
        "properties": {
            "group": {"type": "string", "description": "The API group ('' for core)."},
            "resource": {"type": "string", "description": "The resource (plural)."},
            "controlledResources": {
                "type": "array",
                "description": "Resources whose objects the ring resource controls "
                "(ownerReference with controller: true): they go to their controller's shard.",
                "items": _GROUP_RESOURCE,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["group", "resource"],
            },
        },
    }
    condition = {
        "type": "object",
        "required": ["type", "status", "lastTransitionTime", "reason", "message"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "observedGeneration": {"type": "integer", "format": "int64"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "reason": {"type": "string"},
            "message": {"type": "string"},
        },
    }
    schema = {
        "type": "object",
        "description": "A ring of sharded controller instances: objects of its resources "
        "are distributed across its shards.",
        "x-kubernetes-validations": [
            {
                "rule": "size(self.metadata.name) <= 63",
                "message": "ControllerRing name must not be longer than 63 characters",
            }
        ],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {
                    "resources": {
                        "type": "array",
                        "items": ring_resource,
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["group", "resource"],
                    },
                    "namespaceSelector": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    },
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "observedGeneration": {"type": "integer", "format": "int64"},
                    "shards": {"type": "integer", "format": "int32"},
                    "availableShards": {"type": "integer", "format": "int32"},
                    "conditions": {
                        "type": "array",
                        "items": condition,
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["type"],
                    },
                },
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": CONTROLLER_RINGS.group,
            "scope": "Cluster",
            "names": {
                "plural": "controllerrings",
                "singular": "controllerring",
                "kind": "ControllerRing",
                "listKind": "ControllerRingList",
            },
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema},
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type == "Ready")].status',
                        },
                        _column("Available", "string", ".status.availableShards"),
                        _column("Shards", "string", ".status.shards"),
                        _column("Age", "date", ".metadata.creationTimestamp"),
                    ],
                }
            ],
        },
    }


async def ensure_crd(client: Client, *, within: float = ESTABLISH_TIMEOUT) -> None:
    """Create the CRD unless the cluster has it, then wait until it is Established."""
    crds = Api(client, CUSTOM_RESOURCE_DEFINITIONS)
    try:
        await crds.get(CRD_NAME)
    except errors.NotFound:
        try:
            await crds.create(controller_ring_crd(), field_manager="trio-controller-sharder")
            log.info("Created CustomResourceDefinition %s", CRD_NAME)
        except errors.Conflict:
            pass  # another replica made it meanwhile
    with trio.move_on_after(within):
        while True:
            crd = await crds.get(CRD_NAME)
            conditions = (crd.get("status") or {}).get("conditions") or ()
            if any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in conditions):  # fmt: skip
                return
            await trio.sleep(0.2)
    raise errors.TrioControllerError(
        f"CustomResourceDefinition {CRD_NAME} not established after {within:g}s"
    )
