"""Request authentication for the apiserver, as `httpx.Auth` flows.

- `BearerTokenAuth`: a static token (kubeconfig `token`).
- `TokenFileAuth`: a token read from a file and re-read as it rotates (kubeconfig
  `tokenFile`, the in-cluster service-account token), like client-go's cached file
  token source: at most every `period` seconds, and at once after a 401.
- `BasicAuth`: username/password.
- `ExecAuth`: an exec credential plugin (`client.authentication.k8s.io/v1` or
  `v1beta1`), run with `trio.run_process`, its credential cached until its
  `expirationTimestamp` and refreshed once on a 401.

Client certificates from kubeconfig files are TLS settings (see `kubeconfig.py`); a
client certificate returned by an exec plugin is handed to `ExecAuth.on_client_certificate`
(the `Client` loads it into its SSL context for new connections).

No repr, log line or error message here contains a token, password or key.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from trio_controller.errors import ExecPluginError, KubeconfigError, TrioControllerError

__all__ = [
    "EXEC_API_VERSIONS",
    "BasicAuth",
    "BearerTokenAuth",
    "ExecAuth",
    "ExecConfig",
    "ExecCredential",
    "TokenFileAuth",
]

log = logging.getLogger(__name__)

EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
TOKEN_FILE_PERIOD = 60.0  # client-go re-reads token files once a minute


class BearerTokenAuth(httpx.Auth):
    """Sends a fixed bearer token."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerTokenAuth(<redacted>)"


class BasicAuth(httpx.Auth):
    """HTTP basic authentication (kubeconfig `username`/`password`)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._inner = httpx.BasicAuth(username, password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        return self._inner.auth_flow(request)

    def __repr__(self) -> str:
        return f"BasicAuth({self.username!r}, <redacted>)"


class TokenFileAuth(httpx.Auth):
    """A bearer token read from `path`, re-read every `period` seconds and after a 401.

    If a re-read fails, the last good token is kept (and the failure logged without
    its content). `clock` returns seconds; it defaults to `trio.current_time`.
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
        self._token: str | None = None
        self._read_at = 0.0

    def _read(self) -> str:
        token = self.path.read_text().strip()
        if not token:
            raise ValueError("empty file")
        return token

    def token(self, *, force: bool = False) -> str:
        """The current token, re-reading the file if it is due (or `force`)."""
        now = self._clock()
        if self._token is not None and not force and now - self._read_at < self.period:
            return self._token
        try:
            token = self._read()
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            if self._token is None:
                raise KubeconfigError(
                    f"cannot read token file {self.path}: {_reason(exc)}"
                ) from None
            log.warning(
                "Cannot re-read token file %s (%s); keeping the last token", self.path, _reason(exc)
            )
            token = self._token
        self._token = token
        self._read_at = now
        return token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sent = self.token()
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code == 401:
            fresh = self.token(force=True)
            if fresh != sent:
                request.headers["Authorization"] = f"Bearer {fresh}"
                yield request

    def __repr__(self) -> str:
        return f"TokenFileAuth({str(self.path)!r})"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


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


class ExecAuth(httpx.Auth):
    """Runs an exec credential plugin and sends its token (async clients only).

    The credential is cached until its `expirationTimestamp` (by `now`, a wall clock
    returning an aware datetime). On a 401 the plugin is run again (once) and the
    request retried with the new credential. Concurrent requests share one run.
    """

    def __init__(self, config: ExecConfig, *, now: Callable[[], datetime] = _utcnow) -> None:
        if config.api_version not in EXEC_API_VERSIONS:
            raise ExecPluginError(
                f"exec plugin {config.command!r}: unsupported apiVersion {config.api_version!r}"
            )
        self.config = config
        self._now = now
        self._lock = trio.Lock()
        self._credential: ExecCredential | None = None
        self.runs = 0  # how many times the plugin was run (for tests and metrics)
        # Called with (certificate PEM, key PEM) whenever a new credential carries them.
        self.on_client_certificate: Callable[[bytes, bytes], None] | None = None

    def __repr__(self) -> str:
        return f"ExecAuth({self.config.command!r})"

    def exec_info(self) -> dict[str, Any]:
        """The KUBERNETES_EXEC_INFO object passed to the plugin."""
        spec: dict[str, Any] = {"interactive": False}
        if self.config.provide_cluster_info and self.config.cluster is not None:
            spec["cluster"] = self.config.cluster
        return {"apiVersion": self.config.api_version, "kind": "ExecCredential", "spec": spec}

    async def get_credential(self) -> ExecCredential:
        """The cached credential, or a fresh one if there is none or it expired."""
        async with self._lock:
            cred = self._credential
            if cred is None or cred.expired(self._now()):
                cred = await self._run()
                self._credential = cred
            return cred

    async def refresh(self, stale: ExecCredential | None) -> ExecCredential:
        """Drop `stale` (if it is still the cached one) and return a fresh credential."""
        async with self._lock:
            if self._credential is stale:
                self._credential = None
        return await self.get_credential()

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
            raise ExecPluginError(f"exec plugin {name!r} cannot be run: {_reason(exc)}") from None
        if result.returncode != 0:
            raise ExecPluginError(f"exec plugin {name!r} failed with exit code {result.returncode}")
        cred = self._parse(result.stdout)
        if cred.client_certificate_data is not None and self.on_client_certificate is not None:
            assert cred.client_key_data is not None
            try:
                self.on_client_certificate(cred.client_certificate_data, cred.client_key_data)
            except TrioControllerError as exc:
                raise ExecPluginError(
                    f"exec plugin {name!r} returned an unusable client certificate: {exc}"
                ) from None
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

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("ExecAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        cred = await self.get_credential()
        if cred.token is not None:
            request.headers["Authorization"] = f"Bearer {cred.token}"
        response = yield request
        if response.status_code == 401:
            log.info(
                "Unauthorized with the credential of exec plugin %r; running it again",
                self.config.command,
            )
            cred = await self.refresh(cred)
            if cred.token is not None:
                request.headers["Authorization"] = f"Bearer {cred.token}"
            yield request


def _one_line(text: str) -> str:
    return " ".join(text.split())
