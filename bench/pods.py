"""A realistic pod generator (3-4 KB of JSON each) for benchmarks.

Each pod looks like what a kube-apiserver sends for a Deployment's pod: managedFields
from two managers, labels, annotations, ownerReferences, one container with probes,
resources and volume mounts, volumes, tolerations, conditions and containerStatuses.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

__all__ = ["list_body", "pod", "watch_stream"]

_TIME = "2024-05-01T12:{:02d}:{:02d}Z"


def _ts(rng: random.Random) -> str:
    return _TIME.format(rng.randrange(60), rng.randrange(60))


def pod(
    i: int, *, namespace: str = "default", resource_version: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Pod number ``i``; the same arguments always give the same pod."""
    rng = random.Random(seed * 1_000_003 + i)
    app = f"app-{i % 17}"
    rs = f"{app}-{rng.randrange(16**10):010x}"
    name = f"{rs}-{rng.randrange(36**5):05x}"
    parts = [(32, 8), (16, 4), (16, 4), (16, 4), (48, 12)]
    uid = "-".join(f"{rng.getrandbits(bits):0{width}x}" for bits, width in parts)
    node = f"node-{i % 50}"
    ip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "generateName": f"{rs}-",
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": str(resource_version),
            "creationTimestamp": _ts(rng),
            "labels": {
                "app": app,
                "pod-template-hash": rs.rsplit("-", 1)[1],
                "tier": rng.choice(["frontend", "backend", "cache"]),
                "app.kubernetes.io/version": f"1.{rng.randrange(30)}.{rng.randrange(10)}",
            },
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": _ts(rng),
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs,
                    "uid": f"{rng.getrandbits(128):032x}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": _ts(rng),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {
                            "f:generateName": {},
                            "f:labels": {
                                ".": {},
                                "f:app": {},
                                "f:pod-template-hash": {},
                                "f:tier": {},
                            },
                            "f:ownerReferences": {".": {}, f'k:{{"uid":"{uid}"}}': {}},
                        },
                        "f:spec": {
                            "f:containers": {
                                'k:{"name":"main"}': {
                                    ".": {},
                                    "f:image": {},
                                    "f:imagePullPolicy": {},
                                    "f:name": {},
                                    "f:ports": {
                                        ".": {},
                                        'k:{"containerPort":8080,"protocol":"TCP"}': {},
                                    },
                                    "f:resources": {".": {}, "f:limits": {}, "f:requests": {}},
                                }
                            },
                            "f:dnsPolicy": {},
                            "f:restartPolicy": {},
                        },
                    },
                },
                {
                    "manager": "kubelet",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": _ts(rng),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:status": {
                            "f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}}},
                            "f:containerStatuses": {},
                            "f:podIP": {},
                            "f:startTime": {},
                        }
                    },
                    "subresource": "status",
                },
            ],
        },
        "spec": {
            "volumes": [
                {
                    "name": f"kube-api-access-{rng.randrange(36**5):05x}",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                },
                {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}},
            ],
            "containers": [
                {
                    "name": "main",
                    "image": f"registry.example.com/{app}:1.{rng.randrange(30)}.0",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/app"},
                        {
                            "name": "kube-api-access",
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        },
                    ],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": node,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": _ts(rng)}
                for t in [
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                ]
            ],
            "hostIP": f"192.168.{i % 50}.10",
            "hostIPs": [{"ip": f"192.168.{i % 50}.10"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": _ts(rng),
            "containerStatuses": [
                {
                    "name": "main",
                    "state": {"running": {"startedAt": _ts(rng)}},
                    "lastState": {},
                    "ready": True,
                    "restartCount": rng.randrange(3),
                    "image": f"registry.example.com/{app}:1.0.0",
                    "imageID": f"registry.example.com/{app}@sha256:{rng.getrandbits(256):064x}",
                    "containerID": f"containerd://{rng.getrandbits(256):064x}",
                    "started": True,
                }
            ],
            "qosClass": "Burstable",
            # (3-4 KB in all, like a small Deployment's pod)
        },
    }


def watch_stream(n: int, *, seed: int = 0) -> bytes:
    """``n`` watch lines: ADDED for each pod, a few MODIFIED/DELETED, some bookmarks."""
    lines = []
    rv = 1000
    for i in range(n):
        rv += 1
        kind = "ADDED" if i % 10 < 8 else ("MODIFIED" if i % 10 == 8 else "DELETED")
        lines.append(orjson.dumps({"type": kind, "object": pod(i, resource_version=rv, seed=seed)}))
        if i % 500 == 499:
            bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}}
            lines.append(orjson.dumps({"type": "BOOKMARK", "object": bookmark}))
    return b"\n".join(lines) + b"\n"


def list_body(n: int, *, seed: int = 0, continue_token: str = "") -> bytes:
    """A PodList page of ``n`` pods (items without kind/apiVersion, as the apiserver sends)."""
    items = []
    for i in range(n):
        p = pod(i, seed=seed)
        del p["kind"], p["apiVersion"]
        items.append(p)
    return orjson.dumps(
        {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "5000", "continue": continue_token},
            "items": items,
        }
    )
