"""Credential providers: who we are to the apiserver, with no HTTP library in them.

- `BearerTokenAuth`: a static token (kubeconfig `token`).
- `TokenFileAuth`: a token file re-read as it rotates (`tokenFile`, in-cluster).
- `BasicAuth`: username/password.
- `ExecAuth`: an exec credential plugin (`ExecConfig`), cached until it expires.

Each is a `CredentialProvider`: `await credentials()` per request or watch, and
`await invalidate(sent)` after a 401 (True: retry once with fresh credentials).
Client certificates from kubeconfig files are TLS settings (`config/kubeconfig.py`).
"""

from trio_controller.auth.base import CredentialProvider, Credentials
from trio_controller.auth.basic import BasicAuth
from trio_controller.auth.exec import EXEC_API_VERSIONS, ExecAuth, ExecConfig, ExecCredential
from trio_controller.auth.token import BearerTokenAuth, TokenFileAuth

__all__ = [
    "EXEC_API_VERSIONS",
    "BasicAuth",
    "BearerTokenAuth",
    "CredentialProvider",
    "Credentials",
    "ExecAuth",
    "ExecConfig",
    "ExecCredential",
    "TokenFileAuth",
]
