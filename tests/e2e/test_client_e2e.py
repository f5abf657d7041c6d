"""Our kubeconfig loader and Client against a real kube-apiserver (testenv): real TLS,
client-certificate and bearer-token users, list, watch, create, delete, typed errors."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import orjson
import pytest
import trio
import yaml

from trio_controller._native import BodyDecoder
from trio_controller.auth import BearerTokenAuth
from trio_controller.config import ClusterConfig, TLSConfig, load_config
from trio_controller.errors import Forbidden, NotFound, TLSError, Unauthorized
from trio_controller.transport.client import Client
from trio_controller.transport.watch import WatchBody

# Skips cleanly in a checkout that predates the testenv package.
pytest.importorskip("trio_controller.testing")
from trio_controller.testing import EnvInfo, pod_manifest

pytestmark = pytest.mark.usefixtures("envtest")


async def _watch_until_deleted(body: WatchBody, name: str) -> list[str]:
    """Event types about pod `name`, read from the raw body until its DELETED event."""
    seen: list[str] = []
    buffer = b""
    frames = BodyDecoder(body.chunked, body.content_length)
    while data := await body.receive():
        buffer += frames.feed(data)
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            event = orjson.loads(line)
            if event["object"]["metadata"].get("name") == name:
                seen.append(event["type"])
        if "DELETED" in seen:
            break
    return seen


@pytest.mark.parametrize("which", ["admin_kubeconfig", "token_kubeconfig"])
@pytest.mark.parametrize("http2", [True, False])
async def test_client_lists_watches_creates_and_deletes_pods(
    envtest: EnvInfo, namespace: str, which: str, http2: bool
) -> None:
    config = load_config(getattr(envtest, which), environ={})
    pods = f"/api/v1/namespaces/{namespace}/pods"
    name = f"pod-{uuid.uuid4().hex[:8]}"
    with trio.fail_after(30):
        async with Client(config, http2=http2) as client:
            listed = orjson.loads(await client.list_page(pods, {"limit": 500}))
            assert listed["kind"] == "PodList" and listed["items"] == []
            params = {
                "watch": True,
                "allowWatchBookmarks": True,
                "resourceVersion": listed["metadata"]["resourceVersion"],
                "timeoutSeconds": 20,
            }
            # Lists and writes over HTTP/1.1 or HTTP/2 (httpx); the watch on its own
            # HTTP/1.1 connection (the project's transport).
            async with client.watch(pods, params, idle_timeout=25) as body:
                assert body.status_code == 200 and body.chunked
                created = await client.request_json("POST", pods, pod_manifest(name))
                assert created["metadata"]["name"] == name
                await client.request_json("DELETE", f"{pods}/{name}", {"gracePeriodSeconds": 0})
                seen = await _watch_until_deleted(body, name)
            # Deleting may first set deletionTimestamp (MODIFIED), then remove the pod.
            assert seen[0] == "ADDED" and seen[-1] == "DELETED"
            assert set(seen[1:-1]) <= {"MODIFIED"}
            with pytest.raises(NotFound, match="not found"):
                await client.request_json("GET", f"{pods}/{name}")


async def test_anonymous_user_gets_forbidden(envtest: EnvInfo) -> None:
    config = ClusterConfig(server=envtest.server, tls=TLSConfig(ca_pem=envtest.ca_pem))
    async with Client(config) as client:
        with pytest.raises(Forbidden, match="system:anonymous"):
            await client.list_page("/api/v1/pods")


async def test_wrong_token_is_unauthorized(envtest: EnvInfo) -> None:
    config = ClusterConfig(
        server=envtest.server,
        tls=TLSConfig(ca_pem=envtest.ca_pem),
        auth=BearerTokenAuth("not-the-token"),
    )
    async with Client(config) as client:
        with pytest.raises(Unauthorized) as info:
            await client.list_page("/api/v1/pods")
    assert "not-the-token" not in str(info.value)


async def test_server_certificate_is_rejected_without_its_ca(
    envtest: EnvInfo, tmp_path: Path
) -> None:
    config = ClusterConfig(server=envtest.server)  # system roots only
    async with Client(config) as client:
        with pytest.raises(TLSError, match=r"TLS verification of .* failed"):
            await client.list_page("/api/v1/pods")


EXEC_PLUGIN = """\
import json, os
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {"token": open(os.environ["TOKEN_FILE"]).read().strip()},
}))
"""


async def test_relative_ca_token_file_and_exec_plugin_kubeconfig(
    envtest: EnvInfo, tmp_path: Path
) -> None:
    """One kubeconfig with relative paths: CA file, tokenFile user, exec-plugin user."""
    folder = tmp_path / "kube"
    (folder / "bin").mkdir(parents=True)
    (folder / "ca.crt").write_bytes(envtest.ca_pem)
    (folder / "token").write_text(envtest.token)
    plugin = folder / "bin" / "token-plugin"
    plugin.write_text(f"#!{sys.executable}\n{EXEC_PLUGIN}")
    plugin.chmod(0o755)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e", "cluster": {"server": envtest.server, "certificate-authority": "ca.crt"}}
        ],
        "users": [
            {"name": "file", "user": {"tokenFile": "token"}},
            {
                "name": "exec",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "./bin/token-plugin",
                        "env": [{"name": "TOKEN_FILE", "value": str(folder / "token")}],
                        "interactiveMode": "Never",
                        "provideClusterInfo": True,
                    }
                },
            },
        ],
        "contexts": [
            {
                "name": "file",
                "context": {"cluster": "e", "user": "file", "namespace": "kube-system"},
            },
            {"name": "exec", "context": {"cluster": "e", "user": "exec"}},
        ],
        "current-context": "file",
    }
    path = folder / "config"
    path.write_text(yaml.safe_dump(doc))
    for context in ("file", "exec"):
        config = load_config(environ={"KUBECONFIG": str(path)}, context=context)
        async with Client(config) as client:
            listed = orjson.loads(
                await client.list_page(f"/api/v1/namespaces/{config.namespace}/pods")
            )
            assert listed["kind"] == "PodList"
