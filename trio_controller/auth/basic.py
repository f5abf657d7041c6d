"""HTTP basic authentication (kubeconfig `username`/`password`)."""

from __future__ import annotations

import base64

import trio

from trio_controller.auth.base import Credentials

__all__ = ["BasicAuth"]


class BasicAuth:
    """Sends `Basic base64(username:password)` (UTF-8, as client-go and httpx do)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        userpass = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._credentials = Credentials(authorization=f"Basic {userpass}")

    def __repr__(self) -> str:
        return f"BasicAuth({self.username!r}, <redacted>)"

    async def credentials(self) -> Credentials:
        await trio.lowlevel.checkpoint()
        return self._credentials

    async def invalidate(self, stale: Credentials) -> bool:
        await trio.lowlevel.checkpoint()
        return False
