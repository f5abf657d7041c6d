"""Each kubeconfig the control plane writes reaches the real apiserver over TLS, verified
with the generated CA, and can create, list, watch and delete pods."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import httpx
import pytest
import trio

from trio_controller.testing import EnvInfo, about, pod_manifest, read_events_until

pytestmark = pytest.mark.usefixtures("envtest")


def _causes(error: BaseException | None) -> list[BaseException]:
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


@pytest.mark.parametrize("which", ["admin_kubeconfig", "token_kubeconfig"])
async def test_each_kubeconfig_creates_lists_watches_and_deletes_a_pod(
    envtest: EnvInfo, kubeconfig_client, namespace: str, which: str
) -> None:
    path: Path = getattr(envtest, which)
    name = f"pod-{uuid.uuid4().hex[:8]}"
    pods_url = f"/api/v1/namespaces/{namespace}/pods"
    with trio.fail_after(30):
        async with kubeconfig_client(path) as client:
            listed = (await client.get(pods_url)).raise_for_status().json()
            assert listed["items"] == []
            watch = client.stream(
                "GET",
                pods_url,
                params={
                    "watch": "true",
                    "resourceVersion": listed["metadata"]["resourceVersion"],
                    "timeoutSeconds": "20",
                },
            )
            async with watch as response:
                assert response.status_code == 200
                created = await client.post(pods_url, json=pod_manifest(name, labels={"a": "b"}))
                assert created.status_code == 201, created.text
                listed = (await client.get(pods_url)).raise_for_status().json()
                assert [p["metadata"]["name"] for p in listed["items"]] == [name]
                deleted = await client.delete(
                    f"{pods_url}/{name}", params={"gracePeriodSeconds": "0"}
                )
                assert deleted.status_code == 200, deleted.text
                # Deletion first sets deletionTimestamp (MODIFIED), then removes the pod.
                events = await read_events_until(response, about(name, "DELETED"))
                seen = [e["type"] for e in events if about(name)(e)]
                assert seen[0] == "ADDED"
                assert seen[-1] == "DELETED"
            gone = await client.get(f"{pods_url}/{name}")
            assert gone.status_code == 404


async def test_a_client_without_credentials_is_not_allowed_to_list_pods(
    envtest: EnvInfo,
) -> None:
    async with httpx.AsyncClient(verify=envtest.ssl_context(), timeout=10.0) as client:
        response = await client.get(f"{envtest.server}/api/v1/pods")
    assert response.status_code == 403
    assert "system:anonymous" in response.json()["message"]


async def test_the_server_certificate_is_rejected_without_the_generated_ca(
    envtest: EnvInfo,
) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"{envtest.server}/readyz")
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in _causes(caught.value))


async def test_the_pod_helper_creates_updates_and_deletes_pods(pods, namespace: str) -> None:
    await pods.create_pod(namespace, "one", labels={"app": "x"})
    await pods.create_pod(namespace, "two")
    updated = await pods.update_pod(
        namespace, "one", lambda pod: pod["metadata"]["labels"].update(step="updated")
    )
    assert updated["metadata"]["labels"] == {"app": "x", "step": "updated"}
    patched = await pods.patch_pod(namespace, "two", {"metadata": {"labels": {"p": "q"}}})
    assert patched["metadata"]["labels"] == {"p": "q"}
    selected = await pods.list_pods(namespace, label_selector="app=x")
    assert [p["metadata"]["name"] for p in selected] == ["one"]
    await pods.delete_pod(namespace, "one")
    assert await pods.get_pod(namespace, "one") is None
    assert await pods.delete_pod(namespace, "one", missing_ok=True) is None
    await pods.delete_all_pods(namespace)
    assert await pods.list_pods(namespace) == []
