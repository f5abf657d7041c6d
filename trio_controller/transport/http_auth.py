"""A `CredentialProvider` as an `httpx.Auth` flow (async clients only).

    credentials → Authorization header → send
    401 and provider.invalidate(sent) → fresh credentials → send once more

`on_credentials` sees every credentials object before it is used: the `Client` loads an
exec plugin's client certificate into its SSL context there.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator

import httpx

from trio_controller.auth import CredentialProvider, Credentials

__all__ = ["HttpxAuth"]


class HttpxAuth(httpx.Auth):
    """Authenticates httpx requests with `provider`; retries a 401 at most once."""

    def __init__(
        self,
        provider: CredentialProvider,
        on_credentials: Callable[[Credentials], None] | None = None,
    ) -> None:
        self.provider = provider
        self._on_credentials = on_credentials

    def __repr__(self) -> str:
        return f"HttpxAuth({self.provider!r})"

    def _apply(self, credentials: Credentials, request: httpx.Request) -> None:
        if self._on_credentials is not None:
            self._on_credentials(credentials)
        if credentials.authorization is not None:
            request.headers["Authorization"] = credentials.authorization
        else:
            request.headers.pop("Authorization", None)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("credential providers work with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        sent = await self.provider.credentials()
        self._apply(sent, request)
        response = yield request
        if response.status_code == 401 and await self.provider.invalidate(sent):
            self._apply(await self.provider.credentials(), request)
            yield request
