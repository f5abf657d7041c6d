"""EnvTest: a real etcd and kube-apiserver on loopback, for tests, benchmarks and the demo.

    async with open_envtest() as env:        # or: async with EnvTest.start() as env:
        ...  # env.server, env.admin_kubeconfig, env.token_kubeconfig, env.info

Nothing runs outside the ``async with``: leaving it (normally, by an error or by a
cancellation, also half-way through start-up) stops both processes and waits for them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from trio_controller.testing._assets import find_assets
from trio_controller.testing._crds import CRDError, CRDSource, install_crds, load_crds
from trio_controller.testing._pki import Pki, write_pki
from trio_controller.testing._process import ChildProcess, free_port, log_tail
from trio_controller.testing._webhooks import (
    WebhookInstallError,
    WebhookInstallOptions,
    install_webhooks,
)
from trio_controller.testing.info import (
    TOKEN_USER,
    EnvInfo,
    admin_kubeconfig,
    token_kubeconfig,
)

DEFAULT_START_TIMEOUT = 60.0
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_POLL_INTERVAL = 0.1


class EnvTestError(RuntimeError):
    """The control plane could not be started (the message carries the log's last lines)."""


class EnvTest:
    """A running etcd + kube-apiserver pair; made by `open_envtest` / `EnvTest.start`."""

    def __init__(self, info: EnvInfo, etcd: ChildProcess, apiserver: ChildProcess) -> None:
        self.info = info
        self._etcd = etcd
        self._apiserver = apiserver
        self.webhook_install_options: WebhookInstallOptions | None = None

    @staticmethod
    def start(**options: Any) -> AbstractAsyncContextManager[EnvTest]:
        """``async with EnvTest.start(...) as env:`` is `open_envtest(...)`."""
        return open_envtest(**options)

    # -- what clients need ------------------------------------------------------------
    @property
    def server(self) -> str:
        return self.info.server

    @property
    def ca_file(self) -> Path:
        return self.info.ca_file

    @property
    def ca_pem(self) -> bytes:
        return self.info.ca_pem

    @property
    def admin_kubeconfig(self) -> Path:
        return self.info.admin_kubeconfig

    @property
    def token_kubeconfig(self) -> Path:
        return self.info.token_kubeconfig

    @property
    def token(self) -> str:
        return self.info.token

    @property
    def pids(self) -> dict[str, int | None]:
        """Process ids of the running processes (None for a stopped one)."""
        return {p.name: p.pid if p.running else None for p in (self._etcd, self._apiserver)}

    # -- the apiserver alone (etcd and its data stay) -----------------------------------
    async def stop_apiserver(self, *, kill: bool = False) -> None:
        """Stop kube-apiserver (SIGTERM, then SIGKILL); clients see connection errors.
        With `kill`, SIGKILL at once (a crash: no graceful shutdown, no goodbye to
        clients)."""
        pid = self._apiserver.pid
        if kill and self._apiserver.running and pid is not None:
            os.kill(pid, signal.SIGKILL)
        await self._apiserver.stop()

    async def start_apiserver(self, start_timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Start kube-apiserver again on the same address and wait until it is ready."""
        with trio.move_on_after(start_timeout) as scope:
            await self._apiserver.start()
            await _wait_apiserver_ready(self.info, self._apiserver)
        if scope.cancelled_caught:
            raise _timeout_error(self._apiserver, start_timeout)

    async def restart_apiserver(self, start_timeout: float = DEFAULT_START_TIMEOUT) -> None:
        await self.stop_apiserver()
        await self.start_apiserver(start_timeout)

    @asynccontextmanager
    async def apiserver_stopped(self) -> AsyncIterator[None]:
        """``async with env.apiserver_stopped():`` the apiserver is down inside the block
        and running (ready) again after it."""
        await self.stop_apiserver()
        try:
            yield
        finally:
            await self.start_apiserver()

    # -- the whole control plane ------------------------------------------------------
    async def _start(self, start_timeout: float) -> None:
        with trio.move_on_after(start_timeout) as scope:
            await self._etcd.start()
            await _wait_etcd_healthy(self.info.etcd_url, self._etcd)
            await self._apiserver.start()
            await _wait_apiserver_ready(self.info, self._apiserver)
        if scope.cancelled_caught:
            slow = self._apiserver if self._apiserver.pid is not None else self._etcd
            raise _timeout_error(slow, start_timeout)

    async def _stop(self) -> None:
        await self._apiserver.stop()
        await self._etcd.stop()


def _crash_error(process: ChildProcess) -> EnvTestError:
    return EnvTestError(
        f"{process.name} exited with status {process.returncode} during start-up; "
        f"last lines of {process.log}:\n{log_tail(process.log)}"
    )


def _timeout_error(process: ChildProcess, timeout: float) -> EnvTestError:
    return EnvTestError(
        f"{process.name} was not ready after {timeout:g} s; "
        f"last lines of {process.log}:\n{log_tail(process.log)}"
    )


async def _poll(process: ChildProcess, client: httpx.AsyncClient, urls: Sequence[str]) -> None:
    """Wait until every URL answers 200 in turn; fail as soon as `process` exits."""
    for url in urls:
        while True:
            if process.returncode is not None:
                raise _crash_error(process)
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await trio.sleep(_POLL_INTERVAL)


async def _wait_etcd_healthy(etcd_url: str, etcd: ChildProcess) -> None:
    async with httpx.AsyncClient(timeout=2.0) as client:
        await _poll(etcd, client, [f"{etcd_url}/health"])


async def _wait_apiserver_ready(info: EnvInfo, apiserver: ChildProcess) -> None:
    # /readyz covers etcd, RBAC bootstrap roles and the other post-start hooks; the system
    # namespaces are made by bootstrap controllers that may still be catching up.
    context = info.ssl_context(client_cert=True)
    urls = [f"{info.server}/readyz"]
    urls += [f"{info.server}/api/v1/namespaces/{ns}" for ns in SYSTEM_NAMESPACES]
    async with httpx.AsyncClient(verify=context, timeout=2.0) as client:
        await _poll(apiserver, client, urls)


def _write_private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _prepare(
    assets: Path,
    root: Path,
    etcd_args: Sequence[str],
    apiserver_args: Sequence[str],
) -> EnvTest:
    """Certificates, token file, kubeconfigs and command lines; starts nothing."""
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    pki: Pki = write_pki(root / "pki")
    etcd_port, peer_port, secure_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{secure_port}"
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    token = secrets.token_urlsafe(32)
    token_file = _write_private(
        root / "tokens.csv", f'{token},{TOKEN_USER},{TOKEN_USER},"system:masters"\n'
    )
    info = EnvInfo(
        server=server,
        ca_file=pki.ca_cert,
        admin_cert_file=pki.admin_cert,
        admin_key_file=pki.admin_key,
        admin_kubeconfig=_write_private(
            root / "admin.kubeconfig",
            admin_kubeconfig(server, pki.ca_cert, pki.admin_cert, pki.admin_key),
        ),
        token_kubeconfig=_write_private(
            root / "token.kubeconfig", token_kubeconfig(server, pki.ca_cert, token)
        ),
        token=token,
        etcd_url=etcd_url,
        work_dir=root,
        apiserver_log=root / "kube-apiserver.log",
        etcd_log=root / "etcd.log",
    )
    etcd = ChildProcess(
        "etcd",
        [
            str(assets / "etcd"),
            "--name=envtest",
            f"--data-dir={root / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=envtest={peer_url}",
            "--unsafe-no-fsync=true",
            *etcd_args,
        ],
        info.etcd_log,
    )
    apiserver = ChildProcess(
        "kube-apiserver",
        [
            str(assets / "kube-apiserver"),
            "--advertise-address=127.0.0.1",
            # The endpoint reconciler refuses a loopback address; nothing here needs the
            # `kubernetes` service's endpoints.
            "--endpoint-reconciler-type=none",
            "--bind-address=127.0.0.1",
            f"--secure-port={secure_port}",
            f"--cert-dir={root / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--etcd-servers={etcd_url}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-issuer={server}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            f"--token-auth-file={token_file}",
            "--allow-privileged=true",
            "--profiling=false",
            *apiserver_args,
        ],
        info.apiserver_log,
    )
    return EnvTest(info, etcd, apiserver)


@asynccontextmanager
async def open_envtest(
    *,
    assets_dir: str | os.PathLike[str] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    etcd_args: Sequence[str] = (),
    apiserver_args: Sequence[str] = (),
    crds: Sequence[CRDSource] | CRDSource = (),
    webhook_install_options: WebhookInstallOptions | None = None,
) -> AsyncIterator[EnvTest]:
    """Start etcd and kube-apiserver on free loopback ports; yield when /readyz is 200.

    `assets_dir` (else ``$KUBEBUILDER_ASSETS``, else ``testenv/bin``) holds the binaries.
    `work_dir` keeps certificates, kubeconfigs, logs and etcd data; by default a temporary
    folder removed at the end. Extra flags go last, so they override ours.
    `crds`: CustomResourceDefinitions to install once the apiserver is up (YAML/JSON files,
    folders of them, or dicts); it yields when each is Established and in discovery.
    `webhook_install_options`: a serving certificate for the local webhook server (in
    its `cert_dir`, default `<work_dir>/webhook-certs`), its webhook configurations and
    the conversion of its CRDs pointed at `https://HOST:PORT/...` with that CA, installed
    after the CRDs (envtest's WebhookInstallOptions); `env.webhook_install_options`.
    Raises `EnvTestError` when a process exits or is not ready within `start_timeout`,
    or a CRD or webhook configuration cannot be read (before anything starts) or installed.
    """
    assets = find_assets(assets_dir)
    try:
        crd_documents = await trio.to_thread.run_sync(load_crds, crds)
    except CRDError as error:
        raise EnvTestError(str(error)) from None
    owns_root = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="envtest-")) if work_dir is None else Path(work_dir)
    try:
        env = await trio.to_thread.run_sync(
            _prepare, assets, root, tuple(etcd_args), tuple(apiserver_args)
        )
        configurations: list[dict[str, Any]] = []
        if webhook_install_options is not None:
            try:
                await trio.to_thread.run_sync(webhook_install_options.prepare, root.resolve())
                configurations = webhook_install_options.configurations()
            except WebhookInstallError as error:
                raise EnvTestError(str(error)) from None
            crd_documents = webhook_install_options.convert_crds(crd_documents)
            env.webhook_install_options = webhook_install_options
        try:
            await env._start(start_timeout)
            try:
                await install_crds(env.info, crd_documents, within=start_timeout)
                await install_webhooks(env.info, configurations, within=start_timeout)
            except (CRDError, WebhookInstallError) as error:
                raise EnvTestError(str(error)) from None
            yield env
        finally:
            await env._stop()
    finally:
        if owns_root:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(shutil.rmtree, root, True)
