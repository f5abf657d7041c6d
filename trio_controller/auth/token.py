"""Bearer tokens: a fixed one (kubeconfig `token`) and one read from a file that rotates
(kubeconfig `tokenFile`, the in-cluster service-account token).

`TokenFileAuth` is client-go's cached file token source (`transport/token_source.go`):
the file is re-read at most every `period` seconds, and at once after a 401. A failed
re-read keeps the last good token; the failure is logged, the content never.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import trio

from trio_controller.auth.base import Credentials, error_reason
from trio_controller.errors import KubeconfigError

__all__ = ["TOKEN_FILE_PERIOD", "BearerTokenAuth", "TokenFileAuth"]

log = logging.getLogger(__name__)

TOKEN_FILE_PERIOD = 60.0  # client-go re-reads token files once a minute


class BearerTokenAuth:
    """Sends a fixed bearer token; a 401 cannot be helped by asking again."""

    def __init__(self, token: str) -> None:
        self._credentials = Credentials(authorization=f"Bearer {token}")

    def __repr__(self) -> str:
        return "BearerTokenAuth(<redacted>)"

    async def credentials(self) -> Credentials:
        await trio.lowlevel.checkpoint()
        return self._credentials

    async def invalidate(self, stale: Credentials) -> bool:
        await trio.lowlevel.checkpoint()
        return False


class TokenFileAuth:
    """A bearer token read from `path`, re-read every `period` seconds and after a 401.

    `clock` returns seconds; it defaults to `trio.current_time` (so `MockClock` drives
    the period in tests). The first read must succeed (`KubeconfigError` otherwise).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        period: float = TOKEN_FILE_PERIOD,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.path = Path(path)
        self.period = period
        self._clock = clock or trio.current_time
        self._credentials: Credentials | None = None
        self._read_at = 0.0

    def __repr__(self) -> str:
        return f"TokenFileAuth({str(self.path)!r})"

    async def credentials(self) -> Credentials:
        await trio.lowlevel.checkpoint()
        creds = self._credentials
        if creds is None or self._clock() - self._read_at >= self.period:
            creds = self._reload()
        return creds

    async def invalidate(self, stale: Credentials) -> bool:
        await trio.lowlevel.checkpoint()
        return self._reload() != stale

    def _reload(self) -> Credentials:
        # A synchronous read: a token file is a few hundred bytes on a local (often
        # tmpfs, projected-volume) file system, read once a minute or after a 401.
        now = self._clock()
        try:
            token = self.path.read_text().strip()
            if not token:
                raise ValueError("empty file")
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            if self._credentials is None:
                raise KubeconfigError(
                    f"cannot read token file {self.path}: {error_reason(exc)}"
                ) from None
            log.warning(
                "Cannot re-read token file %s (%s); keeping the last token",
                self.path,
                error_reason(exc),
            )
            creds = self._credentials
        else:
            creds = self._credentials = Credentials(authorization=f"Bearer {token}")
        self._read_at = now
        return creds
