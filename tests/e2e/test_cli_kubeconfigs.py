"""Every kubeconfig shape kubectl accepts connects the CLI to the real apiserver, and every
broken one ends it with one clear line on stderr (no traceback, no credential)."""

from __future__ import annotations

import base64
import shutil
import socket
import stat
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_process import run_controller
from helpers.certs import CA

from trio_controller.testing import EnvInfo, PodHelper

PROBE = "probe"


@pytest.fixture
async def probe_namespace(pods: PodHelper) -> str:
    """A fresh namespace holding one pod, `probe`."""
    name = f"kc-{uuid.uuid4().hex[:10]}"
    await pods.create_namespace(name)
    await pods.create_pod(name, PROBE)
    return name


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def config(
    cluster: dict[str, Any],
    user: dict[str, Any],
    *,
    namespace: str | None = None,
    extra_contexts: list[dict[str, Any]] | None = None,
    current: str = "test",
) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": "test", "user": "test"}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": context}, *(extra_contexts or [])],
        "current-context": current,
    }


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exec_plugin(path: Path, token: str, api_version: str) -> Path:
    """A credential plugin: prints an ExecCredential, checking KUBERNETES_EXEC_INFO."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        f"assert info['apiVersion'] == {api_version!r}, info\n"
        f"print(json.dumps({{'apiVersion': {api_version!r}, 'kind': 'ExecCredential',\n"
        f"                  'status': {{'token': {token!r}}}}}))\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


Shape = Callable[[EnvInfo, Path, str], tuple[Path, list[str], dict[str, str]]]


def data_fields(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    cluster = {"server": env.server, "certificate-authority-data": b64(env.ca_file)}
    user = {
        "client-certificate-data": b64(env.admin_cert_file),
        "client-key-data": b64(env.admin_key_file),
    }
    return write(tmp / "config", config(cluster, user)), ["-n", ns], {}


def relative_files(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    folder = tmp / "kube"
    folder.mkdir()
    for src, name in [(env.ca_file, "ca.crt"), (env.admin_cert_file, "admin.crt"),
                      (env.admin_key_file, "admin.key")]:  # fmt: skip
        shutil.copy(src, folder / name)
    cluster = {"server": env.server, "certificate-authority": "ca.crt"}
    user = {"client-certificate": "admin.crt", "client-key": "admin.key"}
    return write(folder / "config", config(cluster, user)), ["-n", ns], {}


def token(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    cluster = {"server": env.server, "certificate-authority-data": b64(env.ca_file)}
    return write(tmp / "config", config(cluster, {"token": env.token})), ["-n", ns], {}


def token_file(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    (tmp / "kube").mkdir()
    (tmp / "kube" / "token").write_text(env.token + "\n")
    cluster = {"server": env.server, "certificate-authority-data": b64(env.ca_file)}
    kc = write(tmp / "kube" / "config", config(cluster, {"tokenFile": "token"}))
    return kc, ["-n", ns], {}


def exec_v1(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    return _exec(env, tmp, ns, "client.authentication.k8s.io/v1")


def exec_v1beta1(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    return _exec(env, tmp, ns, "client.authentication.k8s.io/v1beta1")


def _exec(env: EnvInfo, tmp: Path, ns: str, version: str) -> tuple[Path, list[str], dict[str, str]]:
    (tmp / "kube").mkdir()
    exec_plugin(tmp / "kube" / "plugin", env.token, version)
    cluster = {"server": env.server, "certificate-authority-data": b64(env.ca_file)}
    user = {"exec": {"apiVersion": version, "command": "./plugin", "interactiveMode": "Never"}}
    return write(tmp / "kube" / "config", config(cluster, user)), ["-n", ns], {}


def context_flag(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    cluster = {"server": env.server, "certificate-authority-data": b64(env.ca_file)}
    data = config(cluster, {"token": env.token}, current="broken")
    data["clusters"].append(
        {"name": "nowhere", "cluster": {"server": f"https://127.0.0.1:{closed_port()}"}}
    )
    data["contexts"].append({"name": "broken", "context": {"cluster": "nowhere", "user": "test"}})
    return write(tmp / "config", data), ["-n", ns, "--context", "test"], {}


def context_namespace(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    cluster = {"server": env.server, "certificate-authority-data": b64(env.ca_file)}
    return write(tmp / "config", config(cluster, {"token": env.token}, namespace=ns)), [], {}


def merged_kubeconfig(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    context = {"cluster": "test", "user": "test", "namespace": ns}
    cluster = {"server": env.server, "certificate-authority-data": b64(env.ca_file)}
    first = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "contexts": [{"name": "test", "context": context}],
        "clusters": [{"name": "test", "cluster": cluster}],
    }
    second = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "elsewhere",
        "clusters": [{"name": "test", "cluster": {"server": f"https://127.0.0.1:{closed_port()}"}}],
        "users": [{"name": "test", "user": {"token": env.token}}],
    }
    a, b = write(tmp / "a.yaml", first), write(tmp / "b.yaml", second)
    path = f"{a}:{tmp / 'missing.yaml'}:{b}"
    return Path(), [], {"KUBECONFIG": path}


def tls_server_name(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    # Reached by IP, verified as "localhost" (a name its certificate has); a wrong name
    # fails verification (see the failure tests).
    cluster = {
        "server": env.server,
        "certificate-authority-data": b64(env.ca_file),
        "tls-server-name": "localhost",
    }
    return write(tmp / "config", config(cluster, {"token": env.token})), ["-n", ns], {}


def insecure(env: EnvInfo, tmp: Path, ns: str) -> tuple[Path, list[str], dict[str, str]]:
    cluster = {"server": env.server, "insecure-skip-tls-verify": True}
    return write(tmp / "config", config(cluster, {"token": env.token})), ["-n", ns], {}


SHAPES: list[Shape] = [
    data_fields,
    relative_files,
    token,
    token_file,
    exec_v1,
    exec_v1beta1,
    context_flag,
    context_namespace,
    merged_kubeconfig,
    tls_server_name,
    insecure,
]


@pytest.mark.parametrize("shape", SHAPES, ids=[s.__name__ for s in SHAPES])
async def test_kubeconfig_shape_connects(
    shape: Shape, envtest: EnvInfo, probe_namespace: str, tmp_path: Path
) -> None:
    path, args, env = shape(envtest, tmp_path, probe_namespace)
    kubeconfig = ["--kubeconfig", str(path)] if path != Path() else []
    async with run_controller(*kubeconfig, *args, env=env, cwd=Path("/")) as ctl:
        await ctl.wait_stdout(f"Sync/Add/Update for Pod {PROBE}")
        assert await ctl.terminate() == 0
    logs = "\n".join(ctl.stderr)
    assert "Traceback" not in logs
    assert envtest.token not in logs
    if shape is insecure:
        assert sum("insecure" in line.lower() for line in ctl.stderr) == 1


SECRET = "do-not-print-this-token-4f1e9c"


async def _service_account_token(pods: PodHelper, namespace: str) -> str:
    """A real token for a ServiceAccount that RBAC lets do nothing."""
    client = pods.client
    (await client.post(f"/api/v1/namespaces/{namespace}/serviceaccounts",
                       json={"metadata": {"name": "nobody"}})).raise_for_status()  # fmt: skip
    response = await client.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/nobody/token",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    response.raise_for_status()
    value: str = response.json()["status"]["token"]
    return value


async def failing(env: EnvInfo, tmp: Path, pods: PodHelper, ns: str, case: str) -> list[str]:
    """The CLI arguments for one broken set-up."""
    ca = {"server": env.server, "certificate-authority-data": b64(env.ca_file)}
    if case == "missing-file":
        return ["--kubeconfig", str(tmp / "nope.yaml")]
    if case == "invalid-yaml":
        return ["--kubeconfig", str(write(tmp / "config", "clusters: [unclosed\n  - : :"))]
    if case == "unknown-context":
        return ["--kubeconfig", str(write(tmp / "config", config(ca, {"token": SECRET}))),
                "--context", "no-such-context"]  # fmt: skip
    if case == "missing-cert-file":
        user = {"client-certificate": "absent.crt", "client-key": "absent.key"}
        return ["--kubeconfig", str(write(tmp / "config", config(ca, user)))]
    if case == "untrusted-server":
        other = CA("someone-else")
        other_ca = base64.b64encode(other.cert_pem).decode()
        wrong = {"server": env.server, "certificate-authority-data": other_ca}
        return ["--kubeconfig", str(write(tmp / "config", config(wrong, {"token": SECRET})))]
    if case == "wrong-tls-server-name":
        named = {**ca, "tls-server-name": "not-the-apiserver.example"}
        return ["--kubeconfig", str(write(tmp / "config", config(named, {"token": SECRET})))]
    if case == "unreachable":
        down = {**ca, "server": f"https://127.0.0.1:{closed_port()}"}
        return ["--kubeconfig", str(write(tmp / "config", config(down, {"token": SECRET})))]
    if case == "unauthorized":
        return ["--kubeconfig", str(write(tmp / "config", config(ca, {"token": SECRET})))]
    if case == "forbidden":
        token = await _service_account_token(pods, ns)
        return ["--kubeconfig", str(write(tmp / "config", config(ca, {"token": token}))),
                "-n", ns]  # fmt: skip
    raise AssertionError(case)


FAILURES = {
    "missing-file": "nope.yaml",
    "invalid-yaml": "config",
    "unknown-context": "no-such-context",
    "missing-cert-file": "absent.crt",
    "untrusted-server": "certificate",
    "wrong-tls-server-name": "certificate",
    "unreachable": "refused",
    "unauthorized": "401",
    "forbidden": "403",
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_a_broken_setup_exits_with_one_clear_line(
    case: str, envtest: EnvInfo, pods: PodHelper, probe_namespace: str, tmp_path: Path
) -> None:
    args = await failing(envtest, tmp_path, pods, probe_namespace, case)
    async with run_controller(*args, cwd=tmp_path) as ctl:
        code = await ctl.wait(within=20)
    assert code != 0
    errors = [line for line in ctl.stderr if line.startswith("error:")]
    assert len(errors) == 1, ctl
    assert FAILURES[case] in errors[0], errors[0]
    logs = "\n".join(ctl.stderr)
    assert "Traceback" not in logs
    assert SECRET not in logs
    assert ctl.stdout == []


WATCH_SHAPES: list[Shape] = [data_fields, token, token_file, exec_v1, tls_server_name, insecure]


@pytest.mark.parametrize("tls", ["rustls", "openssl"])
@pytest.mark.parametrize("mode", ["--streaming-list", "--no-streaming-list"])
@pytest.mark.parametrize("shape", WATCH_SHAPES, ids=[s.__name__ for s in WATCH_SHAPES])
async def test_the_watch_transport_follows_changes_with_each_kubeconfig_shape(
    shape: Shape, mode: str, tls: str, envtest: EnvInfo, pods: PodHelper,
    probe_namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    """The project's own watch transport (TLS in rustls or over MemoryBIO, chunked framing
    in Rust) with each way of authenticating, in both sync modes: a pod created and
    deleted after the sync is seen through the watch, not a list."""
    path, args, env = shape(envtest, tmp_path, probe_namespace)
    env = {**env, "TRIO_CONTROLLER_NATIVE_TLS": "1" if tls == "rustls" else "0"}
    async with run_controller("--kubeconfig", path, *args, mode, env=env, cwd=Path("/")) as ctl:
        await ctl.wait_stdout(f"Sync/Add/Update for Pod {PROBE}")
        await ctl.wait_stderr("Caches are synced")
        await pods.create_pod(probe_namespace, "later")
        await ctl.wait_stdout("Sync/Add/Update for Pod later")
        await pods.delete_pod(probe_namespace, "later")
        await ctl.wait_stdout(f"Pod {probe_namespace}/later does not exist anymore")
        assert await ctl.terminate() == 0
    logs = "\n".join(ctl.stderr)
    assert "Traceback" not in logs and "Failed to" not in logs, logs
    assert envtest.token not in logs
