"""A ServiceAccount token from the TokenRequest API, bound by RBAC to read pods in
`default` only: the real authenticator and authorizer decide, nothing is stubbed."""

from __future__ import annotations

import uuid

import httpx
import trio

from trio_controller.testing import EnvInfo, PodHelper, about, read_events_until

READ_PODS = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


async def _bind_pod_reader(pods: PodHelper, account: str) -> str:
    """ServiceAccount + Role + RoleBinding in `default`; returns a fresh token."""
    client = pods.client
    ns = "/api/v1/namespaces/default"
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    for url, body in [
        (f"{ns}/serviceaccounts", {"metadata": {"name": account}}),
        (f"{rbac}/roles", {"metadata": {"name": account}, "rules": READ_PODS}),
        (
            f"{rbac}/rolebindings",
            {
                "metadata": {"name": account},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": account,
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "default"}],
            },
        ),
    ]:
        (await client.post(url, json=body)).raise_for_status()
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    }
    response = await client.post(f"{ns}/serviceaccounts/{account}/token", json=request)
    response.raise_for_status()
    token: str = response.json()["status"]["token"]
    return token


async def _until_allowed(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """The authorizer learns new RBAC objects from a watch: allow it a moment."""
    while True:
        response = await client.get(url)
        if response.status_code != 403:
            return response
        await trio.sleep(0.1)


async def test_a_service_account_bound_to_read_pods_in_default_can_watch_there_only(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    account = f"reader-{uuid.uuid4().hex[:8]}"
    pod = f"watched-{uuid.uuid4().hex[:8]}"
    with trio.fail_after(30):
        token = await _bind_pod_reader(pods, account)
        async with httpx.AsyncClient(
            base_url=envtest.server,
            verify=envtest.ssl_context(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
        ) as client:
            review = await client.post(
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            )
            review.raise_for_status()
            username = review.json()["status"]["userInfo"]["username"]
            assert username == f"system:serviceaccount:default:{account}"

            listed = await _until_allowed(client, "/api/v1/namespaces/default/pods")
            assert listed.status_code == 200, listed.text
            params = {
                "watch": "true",
                "resourceVersion": listed.json()["metadata"]["resourceVersion"],
                "timeoutSeconds": "20",
            }
            async with client.stream(
                "GET", "/api/v1/namespaces/default/pods", params=params
            ) as watch:
                assert watch.status_code == 200
                await pods.create_pod("default", pod)
                try:
                    events = await read_events_until(watch, about(pod))
                    assert events[-1]["type"] == "ADDED"
                finally:
                    await pods.delete_pod("default", pod, missing_ok=True)

            elsewhere = await client.get(f"/api/v1/namespaces/{namespace}/pods")
            assert elsewhere.status_code == 403
            assert elsewhere.json()["reason"] == "Forbidden"
            watch_elsewhere = await client.get(
                f"/api/v1/namespaces/{namespace}/pods", params={"watch": "true"}
            )
            assert watch_elsewhere.status_code == 403
            everywhere = await client.get("/api/v1/pods")
            assert everywhere.status_code == 403
            create = await client.post(
                "/api/v1/namespaces/default/pods",
                json={"metadata": {"name": "nope"}, "spec": {"containers": []}},
            )
            assert create.status_code == 403


async def test_an_unknown_bearer_token_is_unauthorized(envtest: EnvInfo) -> None:
    async with httpx.AsyncClient(verify=envtest.ssl_context(), timeout=10.0) as client:
        response = await client.get(
            f"{envtest.server}/api/v1/pods", headers={"Authorization": "Bearer not-a-token"}
        )
    assert response.status_code == 401
