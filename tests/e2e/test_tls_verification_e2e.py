"""TLS verification stays on unless the kubeconfig says insecure-skip-tls-verify: a cluster
without a certificate-authority is verified against the system's store (on the real
apiserver: refused while its CA is not in that store, accepted once it is)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from controller_process import run_controller

from trio_controller.testing import EnvInfo, PodHelper

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
