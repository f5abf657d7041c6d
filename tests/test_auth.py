"""Authentication flows: token, token file rotation, basic auth, exec credential plugins.

Requests go to an `httpx.MockTransport` that answers 401 unless it likes the
Authorization header: the subject here is the auth flow, not the network.
"""

from __future__ import annotations

import base64
import stat
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio.testing

from trio_controller.auth import (
    BasicAuth,
    BearerTokenAuth,
    ExecAuth,
    ExecConfig,
    TokenFileAuth,
)
from trio_controller.errors import ExecPluginError, KubeconfigError

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"


def recording_transport(
    accept: Callable[[str | None], bool] = lambda _: True,
) -> tuple[httpx.MockTransport, list[str | None]]:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("Authorization")
        seen.append(header)
        return httpx.Response(200 if accept(header) else 401, json={})

    return httpx.MockTransport(handler), seen


async def get(auth: httpx.Auth, transport: httpx.MockTransport) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport, auth=auth) as client:
        return await client.get("https://k8s.test/api")


# -- static token, basic -------------------------------------------------------------------


async def test_bearer_token_is_sent_and_hidden_from_repr() -> None:
    transport, seen = recording_transport()
    auth = BearerTokenAuth("abc")
    await get(auth, transport)
    assert seen == ["Bearer abc"]
    assert "abc" not in repr(auth)


async def test_basic_auth_is_sent() -> None:
    transport, seen = recording_transport()
    await get(BasicAuth("admin", "pw"), transport)
    assert seen == ["Basic " + base64.b64encode(b"admin:pw").decode()]


# -- token file ----------------------------------------------------------------------------


async def test_token_file_is_re_read_once_the_period_has_passed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "token"
    path.write_text("one\n")
    auth = TokenFileAuth(path, period=60)
    transport, seen = recording_transport()
    await get(auth, transport)
    path.write_text("two")
    await trio.sleep(30)
    await get(auth, transport)  # still cached
    await trio.sleep(31)
    await get(auth, transport)
    assert seen == ["Bearer one", "Bearer one", "Bearer two"]


async def test_token_file_keeps_the_last_token_if_the_file_vanishes(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "token"
    path.write_text("one")
    auth = TokenFileAuth(path, period=1, clock=lambda: now[0])
    assert auth.token() == "one"
    path.unlink()
    now[0] = 10
    assert auth.token() == "one"


def test_unreadable_token_file_without_a_previous_token_is_a_clear_error(tmp_path: Path) -> None:
    auth = TokenFileAuth(tmp_path / "absent", clock=lambda: 0.0)
    with pytest.raises(KubeconfigError, match=r"cannot read token file .*absent"):
        auth.token()


async def test_token_file_is_re_read_at_once_after_a_401(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    auth = TokenFileAuth(path, period=3600, clock=lambda: 0.0)
    transport, seen = recording_transport(lambda h: h == "Bearer new")
    await get(auth, transport)
    path.write_text("new")
    response = await get(auth, transport)
    assert response.status_code == 200
    assert seen == ["Bearer old", "Bearer old", "Bearer new"]


# -- exec plugin ---------------------------------------------------------------------------

PLUGIN = """\
import json, os, sys
log = os.environ["PLUGIN_LOG"]
with open(log, "a") as f:
    f.write(json.dumps({
        "args": sys.argv[1:],
        "info": json.loads(os.environ["KUBERNETES_EXEC_INFO"]),
        "env": os.environ.get("PLUGIN_FLAVOUR"),
        "stdin_tty": sys.stdin.isatty(),
    }) + "\\n")
runs = sum(1 for _ in open(log))
mode = os.environ.get("PLUGIN_MODE", "token")
if mode == "fail":
    print("secret-output-that-must-not-leak")
    sys.exit(3)
if mode == "garbage":
    print("secret-output-that-must-not-leak")
    sys.exit(0)
status = {}
if mode in ("token", "both"):
    status["token"] = f"tok-{runs}"
if mode in ("cert", "both"):
    status["clientCertificateData"] = "CERT-PEM"
    status["clientKeyData"] = "KEY-PEM"
if os.environ.get("PLUGIN_EXPIRES"):
    status["expirationTimestamp"] = os.environ["PLUGIN_EXPIRES"]
api_version = json.loads(os.environ["KUBERNETES_EXEC_INFO"])["apiVersion"]
print(json.dumps({
    "apiVersion": os.environ.get("PLUGIN_API_VERSION", api_version),
    "kind": "ExecCredential",
    "status": status,
}))
"""


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "plugin"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\n{PLUGIN}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def exec_auth(
    plugin: Path,
    *,
    now: Callable[[], datetime] | None = None,
    api_version: str = V1,
    **env: str,
) -> ExecAuth:
    log = plugin.parent / "log"
    config = ExecConfig(
        command=str(plugin),
        args=("--region", "eu"),
        env=(("PLUGIN_LOG", str(log)), *env.items()),
        api_version=api_version,
        interactive_mode="Never",
        provide_cluster_info=True,
        cluster={"server": "https://k8s.test", "certificate-authority-data": "Q0E="},
    )
    if now is None:
        return ExecAuth(config)
    return ExecAuth(config, now=now)


def runs(plugin: Path) -> list[dict[str, Any]]:
    log = plugin.parent / "log"
    if not log.exists():
        return []
    return [orjson.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("api_version", [V1, V1BETA1])
async def test_exec_plugin_gets_args_env_and_exec_info(plugin: Path, api_version: str) -> None:
    auth = exec_auth(plugin, api_version=api_version, PLUGIN_FLAVOUR="mint")
    transport, seen = recording_transport()
    await get(auth, transport)
    assert seen == ["Bearer tok-1"]
    (run,) = runs(plugin)
    assert run["args"] == ["--region", "eu"]
    assert run["env"] == "mint"
    assert run["stdin_tty"] is False
    assert run["info"] == {
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {
            "interactive": False,
            "cluster": {"server": "https://k8s.test", "certificate-authority-data": "Q0E="},
        },
    }


async def test_exec_info_has_no_cluster_unless_asked(plugin: Path) -> None:
    auth = exec_auth(plugin)
    object.__setattr__(auth.config, "provide_cluster_info", False)
    await auth.get_credential()
    assert runs(plugin)[0]["info"]["spec"] == {"interactive": False}


async def test_exec_credential_is_cached_until_it_expires(plugin: Path) -> None:
    clock = [datetime(2030, 1, 1, 12, 0, tzinfo=UTC)]
    expires = "2030-01-01T12:10:00Z"
    auth = exec_auth(plugin, now=lambda: clock[0], PLUGIN_EXPIRES=expires)
    transport, seen = recording_transport()
    await get(auth, transport)
    clock[0] += timedelta(minutes=9, seconds=59)
    await get(auth, transport)
    assert seen == ["Bearer tok-1", "Bearer tok-1"]
    clock[0] += timedelta(seconds=1)
    await get(auth, transport)
    assert seen[-1] == "Bearer tok-2"
    assert auth.runs == 2


async def test_exec_credential_without_expiry_is_cached_until_a_401(plugin: Path) -> None:
    auth = exec_auth(plugin)
    transport, seen = recording_transport(lambda h: h == "Bearer tok-2")
    response = await get(auth, transport)
    assert response.status_code == 200
    assert seen == ["Bearer tok-1", "Bearer tok-2"]
    await get(auth, transport)
    assert seen[-1] == "Bearer tok-2"
    assert auth.runs == 2


async def test_exec_plugin_is_re_run_only_once_per_401(plugin: Path) -> None:
    auth = exec_auth(plugin)
    transport, seen = recording_transport(lambda _: False)
    response = await get(auth, transport)
    assert response.status_code == 401
    assert seen == ["Bearer tok-1", "Bearer tok-2"]


async def test_concurrent_requests_share_one_plugin_run(plugin: Path) -> None:
    auth = exec_auth(plugin)
    transport, seen = recording_transport()
    async with (
        httpx.AsyncClient(transport=transport, auth=auth) as client,
        trio.open_nursery() as nursery,
    ):
        for _ in range(5):
            nursery.start_soon(client.get, "https://k8s.test/api")
    assert seen == ["Bearer tok-1"] * 5
    assert auth.runs == 1


async def test_exec_plugin_failure_names_the_command_not_its_output(plugin: Path) -> None:
    auth = exec_auth(plugin, PLUGIN_MODE="fail")
    with pytest.raises(ExecPluginError) as info:
        await auth.get_credential()
    message = str(info.value)
    assert str(plugin) in message and "exit code 3" in message
    assert "secret" not in message


async def test_exec_plugin_garbage_output_is_reported_without_it(plugin: Path) -> None:
    with pytest.raises(ExecPluginError, match="did not print valid JSON") as info:
        await exec_auth(plugin, PLUGIN_MODE="garbage").get_credential()
    assert "secret" not in str(info.value)


async def test_exec_plugin_with_the_wrong_api_version_is_rejected(plugin: Path) -> None:
    auth = exec_auth(plugin, PLUGIN_API_VERSION=V1BETA1)
    with pytest.raises(ExecPluginError, match=r"configured for .*/v1, but returned"):
        await auth.get_credential()


async def test_missing_exec_plugin_shows_the_install_hint(tmp_path: Path) -> None:
    config = ExecConfig(
        command=str(tmp_path / "no-such-plugin"),
        install_hint="brew install\n no-such-plugin",
        interactive_mode="Never",
    )
    with pytest.raises(ExecPluginError, match=r"not found \(brew install no-such-plugin\)"):
        await ExecAuth(config).get_credential()


async def test_exec_plugin_needing_a_terminal_is_refused(plugin: Path) -> None:
    auth = exec_auth(plugin)
    object.__setattr__(auth.config, "interactive_mode", "Always")
    with pytest.raises(ExecPluginError, match="requires interactive mode"):
        await auth.get_credential()
    assert runs(plugin) == []


async def test_exec_client_certificate_is_handed_to_the_client(plugin: Path) -> None:
    auth = exec_auth(plugin, PLUGIN_MODE="cert")
    received: list[tuple[bytes, bytes]] = []
    auth.on_client_certificate = lambda cert, key: received.append((cert, key))
    transport, seen = recording_transport()
    await get(auth, transport)
    assert received == [(b"CERT-PEM", b"KEY-PEM")]
    assert seen == [None]  # no token: the certificate authenticates
    assert "KEY" not in repr(await auth.get_credential())


def test_exec_auth_refuses_unknown_api_versions(plugin: Path) -> None:
    with pytest.raises(ExecPluginError, match="unsupported apiVersion"):
        ExecAuth(ExecConfig(command=str(plugin), api_version="client.authentication.k8s.io/v9"))


def test_exec_auth_is_async_only(plugin: Path) -> None:
    auth = exec_auth(plugin)
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(RuntimeError, match="AsyncClient only"),
    ):
        client.get("https://k8s.test/", auth=auth)
