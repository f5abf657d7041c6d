"""TLS verification stays on unless the kubeconfig says insecure-skip-tls-verify: a cluster
without a certificate-authority is verified against the system's store (on the real
apiserver: refused while its CA is not in that store, accepted once it is); the watch
transport's two TLS paths (rustls, Python's ssl) with a client certificate, through a
CONNECT proxy, and failing in the same words."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from controller_process import run_controller
from helpers.certs import CA

from trio_controller._native import BodyDecoder
from trio_controller.config import ClusterConfig, TLSConfig
from trio_controller.errors import TLSError
from trio_controller.testing import EnvInfo, PodHelper
from trio_controller.transport import tls as tls_module
from trio_controller.transport.client import Client

PROBE = "probe"


@pytest.fixture
async def probe_namespace(pods: PodHelper) -> str:
    name = f"tls-{uuid.uuid4().hex[:10]}"
    await pods.create_namespace(name)
    await pods.create_pod(name, PROBE)
    return name


def kubeconfig(path: Path, cluster: dict[str, object], token: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_without_a_ca_the_system_store_verifies_the_server(
    envtest: EnvInfo, probe_namespace: str, tmp_path: Path
) -> None:
    config = kubeconfig(tmp_path / "config", {"server": envtest.server}, envtest.token)
    args = ["--kubeconfig", config, "-n", probe_namespace]
    # An empty system store (OpenSSL reads SSL_CERT_FILE/SSL_CERT_DIR): refused.
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    store = {"SSL_CERT_FILE": str(empty), "SSL_CERT_DIR": str(tmp_path / "no-dir")}
    async with run_controller(*args, env=store, cwd=tmp_path) as ctl:
        assert await ctl.wait(within=30) == 1
    errors = [line for line in ctl.stderr if line.startswith("error:")]
    assert len(errors) == 1 and "certificate" in errors[0], ctl
    assert not any("insecure" in line.lower() for line in ctl.stderr)
    # The same kubeconfig once the envtest CA is in the system store: connects.
    store["SSL_CERT_FILE"] = str(envtest.ca_file)
    async with run_controller(*args, env=store, cwd=tmp_path) as ctl:
        await ctl.wait_stdout(f"Sync/Add/Update for Pod {PROBE}")
        assert await ctl.terminate() == 0
    assert not any("insecure" in line.lower() for line in ctl.stderr)


async def test_explicit_insecure_warns_once_even_at_v10(
    envtest: EnvInfo, probe_namespace: str, tmp_path: Path
) -> None:
    insecure = {"server": envtest.server, "insecure-skip-tls-verify": True}
    config = kubeconfig(tmp_path / "config", insecure, envtest.token)
    async with run_controller("--kubeconfig", config, "-n", probe_namespace, "-v", "10") as ctl:
        await ctl.wait_stdout(f"Sync/Add/Update for Pod {PROBE}")
        assert await ctl.terminate() == 0
    warnings = [line for line in ctl.stderr if "insecure-skip-tls-verify" in line]
    assert len(warnings) == 1 and warnings[0].startswith("W"), ctl


# -- the watch transport's two TLS paths against the real apiserver ---------------------


@asynccontextmanager
async def connect_proxy(heads: list[bytes]) -> AsyncIterator[str]:
    """An HTTP proxy on 127.0.0.1 that opens CONNECT tunnels (each request head recorded)."""

    async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await src.receive_some(65536):
                await dst.send_all(data)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await dst.send_eof()

    async def serve(client: trio.SocketStream) -> None:
        async with client:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await client.receive_some(65536)
            heads.append(head)
            host, port = head.split(b" ")[1].decode().rsplit(":", 1)
            async with await trio.open_tcp_stream(host, int(port)) as upstream:
                await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pump, client, upstream)
                    nursery.start_soon(pump, upstream, client)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, listeners)
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


async def first_event(
    envtest: EnvInfo, namespace: str, tls: TLSConfig, *, native: bool, proxy: str | None = None
) -> tuple[dict[str, Any], bool]:
    """The first event of a watch from resourceVersion 0 on the chosen TLS path, and
    whether the native session carried it."""
    saved = tls_module.NATIVE_TLS
    tls_module.NATIVE_TLS = native
    try:
        async with Client(ClusterConfig(server=envtest.server, tls=tls, proxy=proxy)) as client:
            used = tls_module.native_config(client.watch_ssl_context) is not None
            params = {"watch": "1", "resourceVersion": "0"}
            path = f"/api/v1/namespaces/{namespace}/pods"
            async with client.watch(path, params, idle_timeout=20) as body:
                decoder = BodyDecoder(body.chunked, body.content_length)
                line = b""
                while b"\n" not in line:
                    data = await body.receive()
                    assert data, "the watch ended before its first event"
                    line += decoder.feed(data)
        return json.loads(line.split(b"\n")[0]), used
    finally:
        tls_module.NATIVE_TLS = saved


@pytest.mark.parametrize("native", [True, False], ids=["rustls", "openssl"])
@pytest.mark.parametrize("through", ["direct", "proxy"])
async def test_a_client_certificate_watch_works_on_both_tls_paths_and_through_a_proxy(
    envtest: EnvInfo, probe_namespace: str, native: bool, through: str
) -> None:
    """CA bundle, client certificate, a server certificate for 127.0.0.1 (IP SAN), and
    the same inside a CONNECT tunnel."""
    tls = TLSConfig(
        ca_pem=envtest.ca_file.read_bytes(),
        cert_pem=envtest.admin_cert_file.read_bytes(),
        key_pem=envtest.admin_key_file.read_bytes(),
    )
    heads: list[bytes] = []
    async with contextlib.AsyncExitStack() as stack:
        proxy = (
            await stack.enter_async_context(connect_proxy(heads)) if through == "proxy" else None
        )
        event, used = await first_event(envtest, probe_namespace, tls, native=native, proxy=proxy)
    assert used is native
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == PROBE
    if through == "proxy":
        port = envtest.server.rsplit(":", 1)[1]
        assert heads and heads[0].startswith(f"CONNECT 127.0.0.1:{port} ".encode())


@pytest.mark.parametrize("case", ["untrusted", "wrong name"])
async def test_watch_tls_failures_read_the_same_on_both_paths(
    envtest: EnvInfo, probe_namespace: str, case: str
) -> None:
    if case == "untrusted":
        tls = TLSConfig(ca_pem=CA("someone-else").cert_pem)
    else:
        tls = TLSConfig(ca_pem=envtest.ca_file.read_bytes(), server_name="not-it.example")
    messages = []
    for native in (True, False):
        with pytest.raises(TLSError) as info:
            await first_event(envtest, probe_namespace, tls, native=native)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"TLS verification of {envtest.server} failed: ")
