"""Exec credential plugins (`client.authentication.k8s.io/v1` and `v1beta1`).

The plugin is run with `trio.run_process` (stdin closed, never interactive), its
ExecCredential cached until its `expirationTimestamp`, and run again once after a 401.
Its token becomes the `Authorization` header; a client certificate and key it returns
travel in `Credentials.client_certificate`, for the transport to load (this module does
not touch TLS).

No repr, log line or error message here contains a token, a key or the plugin's output.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import trio

from trio_controller.auth.base import Credentials, error_reason
from trio_controller.errors import ExecPluginError

__all__ = ["EXEC_API_VERSIONS", "ExecAuth", "ExecConfig", "ExecCredential"]

log = logging.getLogger(__name__)

EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


@dataclass(frozen=True)
class ExecConfig:
    """A kubeconfig `user.exec` stanza, with the command path already resolved."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    api_version: str = "client.authentication.k8s.io/v1"
    install_hint: str | None = None
    provide_cluster_info: bool = False
    interactive_mode: str = "IfAvailable"
    # ExecCredential spec.cluster (only sent when provide_cluster_info).
    cluster: dict[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ExecCredential:
    """What a plugin returned: a token and/or a client certificate and key (PEM)."""

    token: str | None = field(default=None, repr=False)
    client_certificate_data: bytes | None = field(default=None, repr=False)
    client_key_data: bytes | None = field(default=None, repr=False)
    expiration: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expiration is not None and now >= self.expiration


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ExecAuth:
    """Runs an exec credential plugin and hands out what it returned.

    The credential is cached until its `expirationTimestamp` (by `now`, a wall clock
    returning an aware datetime); concurrent callers share one run. `invalidate` after a
    401 runs the plugin again (once for all who were refused the same credentials).
    """

    def __init__(self, config: ExecConfig, *, now: Callable[[], datetime] = _utcnow) -> None:
        if config.api_version not in EXEC_API_VERSIONS:
            raise ExecPluginError(
                f"exec plugin {config.command!r}: unsupported apiVersion {config.api_version!r}"
            )
        self.config = config
        self._now = now
        self._lock = trio.Lock()
        self._cached: tuple[ExecCredential, Credentials] | None = None
        self.runs = 0  # how many times the plugin was run (for tests and metrics)

    def __repr__(self) -> str:
        return f"ExecAuth({self.config.command!r})"

    async def credentials(self) -> Credentials:
        """The cached credentials, or fresh ones if there are none or they expired."""
        async with self._lock:
            return await self._current()

    async def invalidate(self, stale: Credentials) -> bool:
        """Run the plugin again if `stale` is still the cached credential (a concurrent
        caller may have done so already); True when the credentials now differ."""
        async with self._lock:
            if self._cached is not None and self._cached[1] == stale:
                log.info(
                    "Unauthorized with the credential of exec plugin %r; running it again",
                    self.config.command,
                )
                self._cached = None
            fresh = await self._current()
        return fresh != stale

    async def _current(self) -> Credentials:
        # Called with the lock held.
        if self._cached is None or self._cached[0].expired(self._now()):
            cred = await self._run()
            self._cached = cred, _as_credentials(cred)
        return self._cached[1]

    def exec_info(self) -> dict[str, Any]:
        """The KUBERNETES_EXEC_INFO object passed to the plugin."""
        spec: dict[str, Any] = {"interactive": False}
        if self.config.provide_cluster_info and self.config.cluster is not None:
            spec["cluster"] = self.config.cluster
        return {"apiVersion": self.config.api_version, "kind": "ExecCredential", "spec": spec}

    async def _run(self) -> ExecCredential:
        config = self.config
        name = config.command
        if config.interactive_mode == "Always":
            raise ExecPluginError(
                f"exec plugin {name!r} requires interactive mode, but trio-controller "
                "never runs plugins interactively"
            )
        env = dict(os.environ)
        env.update(config.env)
        env["KUBERNETES_EXEC_INFO"] = orjson.dumps(self.exec_info()).decode()
        self.runs += 1
        try:
            result = await trio.run_process(
                [config.command, *config.args],
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                env=env,
                check=False,
            )
        except FileNotFoundError:
            hint = f" ({_one_line(config.install_hint)})" if config.install_hint else ""
            raise ExecPluginError(f"exec plugin {name!r} not found{hint}") from None
        except OSError as exc:
            raise ExecPluginError(
                f"exec plugin {name!r} cannot be run: {error_reason(exc)}"
            ) from None
        if result.returncode != 0:
            raise ExecPluginError(f"exec plugin {name!r} failed with exit code {result.returncode}")
        cred = self._parse(result.stdout)
        log.debug("exec plugin %r returned a credential (expires %s)", name, cred.expiration)
        return cred

    def _parse(self, stdout: bytes) -> ExecCredential:
        name = self.config.command
        try:
            obj = orjson.loads(stdout)
        except orjson.JSONDecodeError:
            raise ExecPluginError(f"exec plugin {name!r} did not print valid JSON") from None
        if not isinstance(obj, dict) or obj.get("kind") != "ExecCredential":
            raise ExecPluginError(f"exec plugin {name!r} did not return an ExecCredential")
        if obj.get("apiVersion") != self.config.api_version:
            raise ExecPluginError(
                f"exec plugin {name!r} is configured for {self.config.api_version}, "
                f"but returned {obj.get('apiVersion')!r}"
            )
        status = obj.get("status")
        if not isinstance(status, dict):
            raise ExecPluginError(f"exec plugin {name!r} did not return a status")
        token = status.get("token") or None
        cert = status.get("clientCertificateData") or None
        key = status.get("clientKeyData") or None
        if (cert is None) != (key is None):
            raise ExecPluginError(
                f"exec plugin {name!r} returned a client certificate without its key, "
                "or a key without its certificate"
            )
        if token is None and cert is None:
            raise ExecPluginError(
                f"exec plugin {name!r} returned neither a token nor a certificate"
            )
        expiration = None
        stamp = status.get("expirationTimestamp")
        if stamp:
            try:
                expiration = datetime.fromisoformat(str(stamp))
            except ValueError:
                raise ExecPluginError(
                    f"exec plugin {name!r} returned an invalid expirationTimestamp {stamp!r}"
                ) from None
            if expiration.tzinfo is None:
                expiration = expiration.replace(tzinfo=UTC)
        return ExecCredential(
            token=str(token) if token is not None else None,
            client_certificate_data=str(cert).encode() if cert is not None else None,
            client_key_data=str(key).encode() if key is not None else None,
            expiration=expiration,
        )


def _as_credentials(cred: ExecCredential) -> Credentials:
    certificate = None
    if cred.client_certificate_data is not None and cred.client_key_data is not None:
        certificate = (cred.client_certificate_data, cred.client_key_data)
    authorization = f"Bearer {cred.token}" if cred.token is not None else None
    return Credentials(authorization=authorization, client_certificate=certificate)


def _one_line(text: str) -> str:
    return " ".join(text.split())
