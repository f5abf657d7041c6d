"""The httpx adapter: a credential provider's header on every request, one retry after a 401.

Requests go to an `httpx.MockTransport` that answers 401 unless it likes the
Authorization header: the subject is the auth flow, not the network. `Scripted` is a
provider whose answers the test chooses; the real providers are tested in test_auth.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from trio_controller.auth import BearerTokenAuth, CredentialProvider, Credentials, TokenFileAuth
from trio_controller.transport.http_auth import HttpxAuth

OLD = Credentials(authorization="Bearer old")
NEW = Credentials(authorization="Bearer new")
CERT_ONLY = Credentials(client_certificate=(b"CERT", b"KEY"))


class Scripted:
    """Hands out `OLD` until invalidated; then `fresh`. `invalidate` answers `retry`."""

    def __init__(self, *, retry: bool, fresh: Credentials = NEW) -> None:
        self.retry = retry
        self.fresh = fresh
        self.current = OLD
        self.invalidated: list[Credentials] = []

    async def credentials(self) -> Credentials:
        await trio.lowlevel.checkpoint()
        return self.current

    async def invalidate(self, stale: Credentials) -> bool:
        await trio.lowlevel.checkpoint()
        self.invalidated.append(stale)
        self.current = self.fresh
        return self.retry


def recording_transport(
    accept: Callable[[str | None], bool],
) -> tuple[httpx.MockTransport, list[str | None]]:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("Authorization")
        seen.append(header)
        return httpx.Response(200 if accept(header) else 401, json={})

    return httpx.MockTransport(handler), seen


async def get(
    provider: CredentialProvider,
    transport: httpx.MockTransport,
    on_credentials: Callable[[Credentials], None] | None = None,
) -> httpx.Response:
    auth = HttpxAuth(provider, on_credentials)
    async with httpx.AsyncClient(transport=transport, auth=auth) as client:
        return await client.get("https://k8s.test/api")


async def test_credentials_are_sent_and_shown_to_on_credentials_first() -> None:
    transport, seen = recording_transport(lambda _: True)
    shown: list[Credentials] = []
    provider = Scripted(retry=True)
    response = await get(provider, transport, shown.append)
    assert response.status_code == 200
    assert seen == ["Bearer old"]
    assert shown == [OLD]
    assert provider.invalidated == []


async def test_a_401_is_retried_once_with_fresh_credentials_when_invalidate_says_so() -> None:
    transport, seen = recording_transport(lambda h: h == "Bearer new")
    shown: list[Credentials] = []
    provider = Scripted(retry=True)
    response = await get(provider, transport, shown.append)
    assert response.status_code == 200
    assert seen == ["Bearer old", "Bearer new"]
    assert provider.invalidated == [OLD]  # with the credentials that were sent
    assert shown == [OLD, NEW]


async def test_a_401_is_not_retried_when_invalidate_says_no() -> None:
    transport, seen = recording_transport(lambda _: False)
    provider = Scripted(retry=False)
    response = await get(provider, transport)
    assert response.status_code == 401
    assert seen == ["Bearer old"]
    assert provider.invalidated == [OLD]


async def test_a_second_401_is_returned_not_retried_again() -> None:
    transport, seen = recording_transport(lambda _: False)
    provider = Scripted(retry=True)
    response = await get(provider, transport)
    assert response.status_code == 401
    assert seen == ["Bearer old", "Bearer new"]
    assert provider.invalidated == [OLD]


async def test_credentials_without_authorization_send_no_header() -> None:
    """A retry with certificate-only credentials drops the refused token."""
    transport, seen = recording_transport(lambda h: h is None)
    shown: list[Credentials] = []
    provider = Scripted(retry=True, fresh=CERT_ONLY)
    response = await get(provider, transport, shown.append)
    assert response.status_code == 200
    assert seen == ["Bearer old", None]
    assert shown == [OLD, CERT_ONLY]


async def test_a_rotated_token_file_is_picked_up_after_a_401(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    auth = TokenFileAuth(path, period=3600)
    transport, seen = recording_transport(lambda h: h == "Bearer new")
    await get(auth, transport)
    path.write_text("new")
    response = await get(auth, transport)
    assert response.status_code == 200
    assert seen == ["Bearer old", "Bearer old", "Bearer new"]


def test_the_adapter_is_async_only() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(RuntimeError, match="AsyncClient only"),
    ):
        client.get("https://k8s.test/", auth=HttpxAuth(Scripted(retry=False)))


def test_repr_names_the_provider_only() -> None:
    auth = HttpxAuth(BearerTokenAuth("s3cr3t"))
    assert repr(auth) == "HttpxAuth(BearerTokenAuth(<redacted>))"
