"""deploy/ against the real apiserver: every manifest is applied (server-side apply with
strict field validation, in the namespace whose Pod Security level is "restricted"), then
the real RBAC authorizer is asked what the controller's ServiceAccount may do, its real
token is used, and the CLI itself runs with that token and leader election.

No kubelet runs, so the Deployment's pod never starts; the apiserver still validates the
object, defaults it, and PodSecurity admission checks its pod template."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml
from controller_process import run_controller

from trio_controller.testing import EnvInfo, PodHelper
from trio_controller.testing.info import token_kubeconfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAMESPACE = "trio-controller"
ACCOUNT = "trio-controller"
USER = f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", "system:authenticated"]
FIELD_MANAGER = "trio-controller-deploy-e2e"

# (apiVersion, kind) -> (URL prefix, plural, namespaced); also the order of applying.
KINDS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): (
        "/apis/rbac.authorization.k8s.io/v1",
        "clusterroles",
        False,
    ),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): (
        "/apis/rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        False,
    ),
    ("rbac.authorization.k8s.io/v1", "Role"): ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): (
        "/apis/rbac.authorization.k8s.io/v1",
        "rolebindings",
        True,
    ),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
}
ORDER = list(KINDS)


def _manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def _manifests() -> list[dict[str, Any]]:
    objects = [
        doc
        for path in _manifest_files()
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]
    return sorted(objects, key=lambda o: ORDER.index((o["apiVersion"], o["kind"])))


def _url(obj: dict[str, Any]) -> str:
    prefix, plural, namespaced = KINDS[(obj["apiVersion"], obj["kind"])]
    meta = obj["metadata"]
    if namespaced:
        return f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
    assert "namespace" not in meta, obj
    return f"{prefix}/{plural}/{meta['name']}"


async def _apply(
    client: httpx.AsyncClient, obj: dict[str, Any], *, dry_run: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """Server-side apply (idempotent); the stored object and the apiserver's warnings."""
    params = {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
    if dry_run:
        params["dryRun"] = "All"
    response = await client.patch(
        _url(obj),
        params=params,
        content=json.dumps(obj),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert response.status_code in (200, 201), f"{obj['kind']}: {response.text}"
    return response.json(), response.headers.get_list("warning")


async def _apply_all(client: httpx.AsyncClient) -> dict[str, tuple[dict[str, Any], list[str]]]:
    applied = {}
    for obj in _manifests():
        applied[f"{obj['kind']}/{obj['metadata']['name']}"] = await _apply(client, obj)
    return applied


def _deployment(applied: dict[str, tuple[dict[str, Any], list[str]]]) -> dict[str, Any]:
    return applied[f"Deployment/{ACCOUNT}"][0]


async def _review(
    client: httpx.AsyncClient,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str | None = None,
    subresource: str | None = None,
    name: str | None = None,
) -> bool:
    attributes = {"verb": verb, "group": group, "resource": resource}
    if namespace is not None:
        attributes["namespace"] = namespace
    if subresource is not None:
        attributes["subresource"] = subresource
    if name is not None:
        attributes["name"] = name
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": USER, "groups": GROUPS, "resourceAttributes": attributes},
    }
    response = await client.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=body)
    response.raise_for_status()
    return bool(response.json()["status"].get("allowed"))


async def _until_reviewed_allowed(client: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
    """The authorizer learns new RBAC objects from a watch: allow it a moment."""
    while True:
        if await _review(client, *args, **kwargs):
            return
        await trio.sleep(0.1)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [p.name for p in _manifest_files()]
    kinds = [(o["apiVersion"], o["kind"]) for o in _manifests()]
    assert sorted(kinds, key=ORDER.index) == ORDER  # one of each kind, nothing else
    for obj in _manifests():
        if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]


async def test_every_manifest_applies_without_a_warning(pods: PodHelper) -> None:
    with trio.fail_after(30):
        applied = await _apply_all(pods.client)
        again = await _apply_all(pods.client)  # re-applying is a no-op
    assert list(applied) == [
        "Namespace/trio-controller",
        "ServiceAccount/trio-controller",
        "ClusterRole/trio-controller",
        "ClusterRoleBinding/trio-controller",
        "Role/trio-controller-leader-election",
        "RoleBinding/trio-controller-leader-election",
        "Deployment/trio-controller",
    ]
    for key, (_, warnings) in applied.items():
        assert warnings == [], key  # no unknown field, no Pod Security violation
    for key in applied:
        assert again[key][0]["metadata"]["uid"] == applied[key][0]["metadata"]["uid"]
    labels = applied["Namespace/trio-controller"][0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


async def test_pod_security_admission_would_flag_a_loosened_template(pods: PodHelper) -> None:
    """The no-warning check above can fail: the same Deployment with its container's
    securityContext removed is flagged by the apiserver (a dry run, nothing stored)."""
    with trio.fail_after(30):
        await _apply_all(pods.client)
        (deployment,) = [o for o in _manifests() if o["kind"] == "Deployment"]
        loosened = copy.deepcopy(deployment)
        loosened["metadata"]["name"] = "loosened"
        del loosened["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        _, warnings = await _apply(pods.client, loosened, dry_run=True)
        missing = await pods.client.get(_url(loosened))
    assert any("restricted" in w and "allowPrivilegeEscalation" in w for w in warnings), warnings
    assert missing.status_code == 404


async def test_the_deployment_runs_the_cli_hardened_with_probes_on_the_health_port(
    pods: PodHelper,
) -> None:
    with trio.fail_after(30):
        deployment = _deployment(await _apply_all(pods.client))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == ACCOUNT
    assert pod.get("automountServiceAccountToken", True) is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    args = container["args"]
    assert "--health-probe-bind-address=:8081" in args
    assert "--metrics-bind-address=:8080" in args
    assert "--leader-elect" not in args  # one replica; see the comment in deployment.yaml
    assert deployment["spec"]["replicas"] == 1
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8081, "metrics": 8080}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] == "health"
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


ALLOWED = [
    ("get", "pods", {}),
    ("list", "pods", {}),
    ("watch", "pods", {}),
    ("get", "pods", {"namespace": "kube-system", "name": "any"}),
    ("watch", "pods", {"namespace": "default"}),
    ("get", "leases", {"group": "coordination.k8s.io", "namespace": NAMESPACE}),
    ("create", "leases", {"group": "coordination.k8s.io", "namespace": NAMESPACE}),
    ("update", "leases", {"group": "coordination.k8s.io", "namespace": NAMESPACE, "name": "x"}),
]
DENIED = [
    ("create", "pods", {"namespace": "default"}),
    ("update", "pods", {"namespace": "default", "name": "any"}),
    ("patch", "pods", {"namespace": "default", "name": "any"}),
    ("delete", "pods", {"namespace": "default", "name": "any"}),
    ("deletecollection", "pods", {"namespace": "default"}),
    ("get", "pods", {"namespace": "default", "name": "any", "subresource": "log"}),
    ("create", "pods", {"namespace": "default", "name": "any", "subresource": "exec"}),
    ("update", "pods", {"namespace": "default", "name": "any", "subresource": "status"}),
    ("get", "secrets", {}),
    ("get", "secrets", {"namespace": NAMESPACE}),
    ("list", "secrets", {"namespace": NAMESPACE}),
    ("list", "configmaps", {}),
    ("list", "configmaps", {"namespace": NAMESPACE}),
    ("list", "nodes", {}),
    ("create", "events", {"namespace": NAMESPACE}),
    ("create", "serviceaccounts", {"namespace": NAMESPACE, "subresource": "token"}),
    ("patch", "deployments", {"group": "apps", "namespace": NAMESPACE}),
    ("delete", "leases", {"group": "coordination.k8s.io", "namespace": NAMESPACE}),
    ("patch", "leases", {"group": "coordination.k8s.io", "namespace": NAMESPACE}),
    ("list", "leases", {"group": "coordination.k8s.io", "namespace": NAMESPACE}),
    ("watch", "leases", {"group": "coordination.k8s.io", "namespace": NAMESPACE}),
    ("get", "leases", {"group": "coordination.k8s.io", "namespace": "default"}),
    ("create", "leases", {"group": "coordination.k8s.io", "namespace": "kube-system"}),
    ("update", "leases", {"group": "coordination.k8s.io"}),  # not cluster-wide
    ("escalate", "clusterroles", {"group": "rbac.authorization.k8s.io"}),
    ("impersonate", "users", {}),
]


async def test_the_service_account_may_read_pods_and_hold_a_lease_and_nothing_more(
    pods: PodHelper,
) -> None:
    with trio.fail_after(30):
        await _apply_all(pods.client)
        # Wait until both bindings are in the authorizer's cache.
        await _until_reviewed_allowed(pods.client, "watch", "pods")
        await _until_reviewed_allowed(
            pods.client, "create", "leases", group="coordination.k8s.io", namespace=NAMESPACE
        )
        allowed = {
            (verb, resource, str(kw)): await _review(pods.client, verb, resource, **kw)
            for verb, resource, kw in ALLOWED
        }
        denied = {
            (verb, resource, str(kw)): await _review(pods.client, verb, resource, **kw)
            for verb, resource, kw in DENIED
        }
    assert [k for k, ok in allowed.items() if not ok] == []
    assert [k for k, ok in denied.items() if ok] == []


async def _service_account_token(client: httpx.AsyncClient) -> str:
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    }
    response = await client.post(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{ACCOUNT}/token", json=request
    )
    response.raise_for_status()
    token: str = response.json()["status"]["token"]
    return token


async def test_the_service_accounts_own_token_is_held_to_the_same_rules(
    envtest: EnvInfo, pods: PodHelper
) -> None:
    lease_name = f"e2e-{uuid.uuid4().hex[:8]}"
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
    with trio.fail_after(30):
        await _apply_all(pods.client)
        await _until_reviewed_allowed(
            pods.client, "create", "leases", group="coordination.k8s.io", namespace=NAMESPACE
        )
        token = await _service_account_token(pods.client)
        async with httpx.AsyncClient(
            base_url=envtest.server,
            verify=envtest.ssl_context(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
        ) as client:
            whoami = await client.post(
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            )
            assert whoami.json()["status"]["userInfo"]["username"] == USER
            listed = await client.get("/api/v1/pods", params={"limit": "1"})
            assert listed.status_code == 200, listed.text
            watched = await client.get(
                "/api/v1/pods",
                params={
                    "watch": "true",
                    "timeoutSeconds": "1",
                    "resourceVersion": listed.json()["metadata"]["resourceVersion"],
                },
            )
            assert watched.status_code == 200, watched.text

            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": lease_name},
                "spec": {"holderIdentity": "e2e", "leaseDurationSeconds": 15},
            }
            created = await client.post(leases, json=lease)
            assert created.status_code == 201, created.text
            current = await client.get(f"{leases}/{lease_name}")
            assert current.status_code == 200
            renewed = current.json()
            renewed["spec"]["holderIdentity"] = "e2e-2"
            updated = await client.put(f"{leases}/{lease_name}", json=renewed)
            assert updated.status_code == 200, updated.text

            forbidden = [
                await client.delete(f"{leases}/{lease_name}"),
                await client.post(
                    "/apis/coordination.k8s.io/v1/namespaces/default/leases", json=lease
                ),
                await client.post(
                    "/api/v1/namespaces/default/pods",
                    json={"metadata": {"name": "nope"}, "spec": {"containers": []}},
                ),
                await client.get(f"/api/v1/namespaces/{NAMESPACE}/secrets"),
                await client.get("/api/v1/configmaps"),
            ]
        assert [r.status_code for r in forbidden] == [403] * len(forbidden)
        kept = await pods.client.get(f"{leases}/{lease_name}")
        assert kept.status_code == 200
        await pods.client.delete(f"{leases}/{lease_name}")


@pytest.mark.parametrize("leader_elect", [False, True], ids=["plain", "leader-elect"])
async def test_the_cli_runs_with_just_these_permissions(
    envtest: EnvInfo, pods: PodHelper, namespace: str, tmp_path: Path, leader_elect: bool
) -> None:
    """The controller, with the ServiceAccount's token and the Deployment's watch scope
    (`--all-namespaces`), syncs and sees a new pod: the rules are enough, not only small."""
    pod = f"deployed-{uuid.uuid4().hex[:8]}"
    with trio.fail_after(60):
        await _apply_all(pods.client)
        await _until_reviewed_allowed(pods.client, "watch", "pods")
        await _until_reviewed_allowed(
            pods.client, "update", "leases", group="coordination.k8s.io", namespace=NAMESPACE
        )
        kubeconfig = tmp_path / "sa.kubeconfig"
        kubeconfig.write_text(
            token_kubeconfig(
                envtest.server, envtest.ca_file, await _service_account_token(pods.client)
            )
        )
        extra = []
        if leader_elect:
            extra = [
                "--leader-elect",
                f"--leader-elect-resource-namespace={NAMESPACE}",
                f"--leader-elect-resource-name=e2e-{uuid.uuid4().hex[:8]}",
            ]
        async with run_controller(
            "--kubeconfig", kubeconfig, "--all-namespaces", *extra, env={"POD_NAME": pod}
        ) as controller:
            await controller.wait_stderr("Caches are synced")
            await pods.create_pod(namespace, pod)
            await controller.wait_stdout(f"Sync/Add/Update for Pod {pod}")
            assert await controller.terminate() == 0, controller
    assert not any("forbidden" in line.lower() for line in controller.stderr), controller
