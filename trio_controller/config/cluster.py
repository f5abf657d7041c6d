"""The plain-data result of loading a kubeconfig: one apiserver, one user."""

from __future__ import annotations

from dataclasses import dataclass, field

from trio_controller.auth import CredentialProvider

__all__ = ["ClusterConfig", "TLSConfig"]


@dataclass(frozen=True)
class TLSConfig:
    """TLS settings; PEM data already read from files. `*_source` names where it came from."""

    ca_pem: bytes | None = field(default=None, repr=False)
    ca_source: str | None = None
    cert_pem: bytes | None = field(default=None, repr=False)
    cert_source: str | None = None
    key_pem: bytes | None = field(default=None, repr=False)
    key_source: str | None = None
    insecure: bool = False
    server_name: str | None = None


@dataclass(frozen=True)
class ClusterConfig:
    """Everything needed to talk to one apiserver as one user."""

    server: str
    namespace: str = "default"
    tls: TLSConfig = field(default_factory=TLSConfig)
    auth: CredentialProvider | None = None  # shared by every transport; never mutated
    proxy: str | None = None
    disable_compression: bool = False
    context: str | None = None
    source: str = ""  # the kubeconfig file(s), or "in-cluster"
