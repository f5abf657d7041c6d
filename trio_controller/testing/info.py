"""What a running test control plane offers its clients: URL, CA, credentials, kubeconfigs.

`EnvInfo` is plain data, so a control plane started in another process (the pytest
session fixture, ``python -m trio_controller.testing --info-out``) hands it over as JSON.
"""

from __future__ import annotations

import base64
import json
import ssl
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

TOKEN_USER = "envtest-token-user"


@dataclass(frozen=True)
class EnvInfo:
    server: str
    """``https://127.0.0.1:<port>``"""
    ca_file: Path
    admin_cert_file: Path
    """Client certificate of user ``envtest-admin`` in group ``system:masters``."""
    admin_key_file: Path
    admin_kubeconfig: Path
    token_kubeconfig: Path
    """Bearer `token` of user ``envtest-token-user`` (groups ``system:masters``)."""
    token: str
    etcd_url: str
    work_dir: Path
    apiserver_log: Path
    etcd_log: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    def ssl_context(self, *, client_cert: bool = False) -> ssl.SSLContext:
        """Verifies the server with the generated CA; with `client_cert`, presents the
        admin certificate too. (httpx 0.28 wants an SSLContext as ``verify=``.)"""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if client_cert:
            context.load_cert_chain(self.admin_cert_file, self.admin_key_file)
        return context

    def to_json(self) -> str:
        return json.dumps({k: str(v) for k, v in asdict(self).items()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> EnvInfo:
        raw: dict[str, Any] = json.loads(text)
        values: dict[str, Any] = {}
        for f in fields(cls):
            values[f.name] = Path(raw[f.name]) if f.type == "Path" else raw[f.name]
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> EnvInfo:
        return cls.from_json(Path(path).read_text())

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def kubeconfig(server: str, ca_file: Path, user: str, credentials: dict[str, str]) -> str:
    """A one-context kubeconfig (YAML) whose cluster is verified with the CA in `ca_file`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "envtest",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_file)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {
                "name": f"{user}@envtest",
                "context": {"cluster": "envtest", "user": user, "namespace": "default"},
            }
        ],
        "current-context": f"{user}@envtest",
        "preferences": {},
    }
    text: str = yaml.safe_dump(config, sort_keys=False)
    return text


def admin_kubeconfig(server: str, ca_file: Path, cert_file: Path, key_file: Path) -> str:
    return kubeconfig(
        server,
        ca_file,
        "envtest-admin",
        {"client-certificate-data": _b64(cert_file), "client-key-data": _b64(key_file)},
    )


def token_kubeconfig(server: str, ca_file: Path, token: str) -> str:
    return kubeconfig(server, ca_file, TOKEN_USER, {"token": token})
