"""No credential reaches the logs, at any verbosity: the CLI runs at `-v 10` against the real
apiserver with every kind of kubeconfig user (client certificate, token, tokenFile, exec
plugins returning a token or a client certificate, basic auth) and with credentials the
server refuses; stdout and stderr must not hold a token, password, key or plugin output,
nor their base64, nor a line of the key's PEM body."""

from __future__ import annotations

import base64
import json
import stat
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_process import run_controller

from trio_controller.testing import EnvInfo, PodHelper

PROBE = "probe"
WRONG_TOKEN = "wrong-token-7c2d61e0b9a84f55"
PASSWORD = "basic-password-5b0e3f9a"
ENV_SECRET = "exec-env-secret-91d2c4"


@pytest.fixture
async def probe_namespace(pods: PodHelper) -> str:
    name = f"ns-{uuid.uuid4().hex[:10]}"
    await pods.create_namespace(name)
    await pods.create_pod(name, PROBE)
    return name


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def pem_body_lines(pem: bytes) -> list[str]:
    return [
        line
        for line in pem.decode().splitlines()
        if line and not line.startswith("-----") and len(line) >= 16
    ]


@dataclass
class Setup:
    kubeconfig: Path
    secrets: list[str] = field(default_factory=list)

    def add_token(self, token: str) -> None:
        self.secrets += [token, b64(token)]

    def add_key(self, key_pem: bytes) -> None:
        self.secrets += [key_pem.decode(), b64(key_pem), *pem_body_lines(key_pem)]


def kubeconfig(env: EnvInfo, path: Path, user: dict[str, Any]) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": env.server,
                    "certificate-authority-data": b64(env.ca_file.read_bytes()),
                },
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def plugin(path: Path, status: dict[str, str]) -> Path:
    """An exec plugin printing an ExecCredential with `status`."""
    output = json.dumps(
        {
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": status,
        }
    )
    path.write_text(f"#!{sys.executable}\nprint({output!r})\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def exec_user(command: Path) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(command),
            "interactiveMode": "Never",
            "env": [{"name": "PLUGIN_SECRET", "value": ENV_SECRET}],
            "provideClusterInfo": True,
        }
    }


def setup(kind: str, env: EnvInfo, tmp: Path) -> Setup:
    key_pem = env.admin_key_file.read_bytes()
    cert_pem = env.admin_cert_file.read_bytes()
    config = tmp / "config"
    if kind == "client-certificate-data":
        user = {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}
        s = Setup(kubeconfig(env, config, user))
        s.add_key(key_pem)
    elif kind == "client-certificate-files":
        (tmp / "admin.crt").write_bytes(cert_pem)
        (tmp / "admin.key").write_bytes(key_pem)
        user = {"client-certificate": "admin.crt", "client-key": "admin.key"}
        s = Setup(kubeconfig(env, config, user))
        s.add_key(key_pem)
    elif kind == "token":
        s = Setup(kubeconfig(env, config, {"token": env.token}))
        s.add_token(env.token)
    elif kind == "tokenFile":
        (tmp / "token").write_text(env.token + "\n")
        s = Setup(kubeconfig(env, config, {"tokenFile": "token"}))
        s.add_token(env.token)
    elif kind == "exec-token":
        command = plugin(tmp / "plugin", {"token": env.token})
        s = Setup(kubeconfig(env, config, exec_user(command)))
        s.add_token(env.token)
        s.secrets.append(command.read_text().splitlines()[1])  # the plugin's whole output
    elif kind == "exec-client-certificate":
        status = {"clientCertificateData": cert_pem.decode(), "clientKeyData": key_pem.decode()}
        command = plugin(tmp / "plugin", status)
        s = Setup(kubeconfig(env, config, exec_user(command)))
        s.add_key(key_pem)
        s.secrets.append(json.dumps(key_pem.decode()))  # the key as the plugin printed it
    else:
        raise AssertionError(kind)
    s.secrets += [ENV_SECRET, b64(ENV_SECRET)]
    return s


def assert_no_secret(output: str, secrets: list[str]) -> None:
    assert secrets
    for secret in secrets:
        assert secret not in output, f"a credential ({secret[:6]}...) appears in the output"


KINDS = [
    "client-certificate-data",
    "client-certificate-files",
    "token",
    "tokenFile",
    "exec-token",
    "exec-client-certificate",
]


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("kind", KINDS)
async def test_no_credential_is_logged_at_v10(
    kind: str, fmt: str, envtest: EnvInfo, probe_namespace: str, tmp_path: Path
) -> None:
    s = setup(kind, envtest, tmp_path)
    args = ["--kubeconfig", s.kubeconfig, "-n", probe_namespace, "-v", "10"]
    async with run_controller(*args, "--logging-format", fmt, cwd=tmp_path) as ctl:
        await ctl.wait_stdout(f"Sync/Add/Update for Pod {PROBE}")
        assert await ctl.terminate() == 0, ctl
    output = "\n".join(ctl.stdout + ctl.stderr)
    # -v 10 really is verbose: client-go's V(6) line for every request is there.
    assert any(f"/api/v1/namespaces/{probe_namespace}/pods" in line for line in ctl.stderr), ctl
    assert "Traceback" not in output
    assert_no_secret(output, s.secrets)


FAILURES = ["wrong-token", "basic-auth", "exec-wrong-token"]


@pytest.mark.parametrize("case", FAILURES)
async def test_no_credential_is_logged_when_the_server_refuses_it_at_v10(
    case: str, envtest: EnvInfo, probe_namespace: str, tmp_path: Path
) -> None:
    """Refused at -v 10: one error line, tracebacks (that verbosity shows them), no secret.

    kube-apiserver has had no basic authentication since 1.19: it ignores the header, so
    a kubeconfig with a username and password is anonymous there, and refused (403)."""
    config = tmp_path / "config"
    s = Setup(config)
    if case == "wrong-token":
        kubeconfig(envtest, config, {"token": WRONG_TOKEN})
        s.add_token(WRONG_TOKEN)
    elif case == "basic-auth":
        kubeconfig(envtest, config, {"username": "admin", "password": PASSWORD})
        s.add_token(PASSWORD)
        s.secrets.append(b64(f"admin:{PASSWORD}"))  # the Authorization header's value
    else:
        command = plugin(tmp_path / "plugin", {"token": WRONG_TOKEN})
        kubeconfig(envtest, config, exec_user(command))
        s.add_token(WRONG_TOKEN)
        s.secrets += [command.read_text().splitlines()[1], ENV_SECRET]
    args = ["--kubeconfig", config, "-n", probe_namespace, "-v", "10"]
    async with run_controller(*args, cwd=tmp_path) as ctl:
        code = await ctl.wait(within=30)
    assert code == 1, ctl
    errors = [line for line in ctl.stderr if line.startswith("error:")]
    expected = "403 Forbidden" if case == "basic-auth" else "401 Unauthorized"
    assert len(errors) == 1 and expected in errors[0], ctl
    assert ctl.stdout == []
    assert_no_secret("\n".join(ctl.stderr), s.secrets)
