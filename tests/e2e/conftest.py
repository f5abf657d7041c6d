"""Helpers for end-to-end tests: plain httpx clients built from a kubeconfig file (on
purpose not our own kubeconfig loader, so these tests check the control plane alone)."""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml

ClientFactory = Callable[[Path], AbstractAsyncContextManager[httpx.AsyncClient]]


def _only(kubeconfig: dict[str, Any], kind: str) -> dict[str, Any]:
    (entry,) = kubeconfig[kind]
    value: dict[str, Any] = entry[kind[:-1]]
    return value


@pytest.fixture
def kubeconfig_client(tmp_path: Path) -> ClientFactory:
    """``async with kubeconfig_client(path) as client:`` an httpx client for the cluster
    and user of a one-context kubeconfig (client certificate or bearer token)."""

    @asynccontextmanager
    async def open_client(path: Path) -> AsyncIterator[httpx.AsyncClient]:
        config = yaml.safe_load(await trio.Path(path).read_text())
        cluster, user = _only(config, "clusters"), _only(config, "users")
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context = ssl.create_default_context(cadata=ca)
        headers = {}
        if "token" in user:
            headers["Authorization"] = f"Bearer {user['token']}"
        if "client-certificate-data" in user:
            cert, key = tmp_path / f"{path.stem}.crt", tmp_path / f"{path.stem}.key"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            os.chmod(key, 0o600)
            context.load_cert_chain(cert, key)
        async with httpx.AsyncClient(
            base_url=cluster["server"], verify=context, headers=headers, timeout=10.0
        ) as client:
            yield client

    return open_client
