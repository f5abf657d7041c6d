"""What a credential provider hands out, and the two calls every transport makes.

    creds = await provider.credentials()        # per request / per watch; cheap when cached
    ... send with creds.authorization (header) and creds.client_certificate (TLS) ...
    if status == 401 and await provider.invalidate(creds):
        creds = await provider.credentials()    # fresh: retry once

Providers know nothing of HTTP libraries or TLS contexts: the httpx adapter
(`transport/http_auth.py`) and the owned watch transport both drive them through these
two calls, and the `Client` loads a returned client certificate into its SSL context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CredentialProvider", "Credentials", "error_reason"]


@dataclass(frozen=True)
class Credentials:
    """One set of credentials for a request. Neither field appears in the repr.

    `authorization` is the whole `Authorization` header value (`Bearer ...`, `Basic ...`);
    `client_certificate` is (certificate PEM, key PEM), returned by exec plugins.
    """

    authorization: str | None = field(default=None, repr=False)
    client_certificate: tuple[bytes, bytes] | None = field(default=None, repr=False)


class CredentialProvider(Protocol):
    """A source of `Credentials` (static token, token file, basic auth, exec plugin)."""

    async def credentials(self) -> Credentials:
        """The credentials to send now. Called once per request or watch: cached
        providers answer without I/O."""
        ...

    async def invalidate(self, stale: Credentials) -> bool:
        """`stale` was answered with 401: drop it. True when the credentials the next
        `credentials()` call returns differ from `stale`, so one retry makes sense."""
        ...


def error_reason(exc: BaseException) -> str:
    """A one-line reason for `exc` that never quotes file contents."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"  # its str() quotes the offending byte
    return str(exc) or type(exc).__name__
