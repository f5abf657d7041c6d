"""Credential providers: token, token file rotation, basic auth, exec credential plugins.

No HTTP here: a provider is driven through `credentials()` and, after a 401,
`invalidate(sent)`, exactly as both transports drive it (see test_http_auth.py for httpx).
"""

from __future__ import annotations

import base64
import logging
import stat
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from trio_controller.auth import (
    BasicAuth,
    BearerTokenAuth,
    CredentialProvider,
    Credentials,
    ExecAuth,
    ExecConfig,
    TokenFileAuth,
)
from trio_controller.errors import ExecPluginError, KubeconfigError

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
SECRET = "s3cr3t-token-value"


# -- credentials, static token, basic -------------------------------------------------------


def test_credentials_keep_their_contents_out_of_the_repr() -> None:
    creds = Credentials(authorization=f"Bearer {SECRET}", client_certificate=(b"CERT", b"KEY"))
    assert SECRET not in repr(creds)
    assert "CERT" not in repr(creds) and "KEY" not in repr(creds)


async def test_bearer_token_is_the_authorization_and_a_401_cannot_be_helped() -> None:
    auth = BearerTokenAuth(SECRET)
    creds = await auth.credentials()
    assert creds == Credentials(authorization=f"Bearer {SECRET}")
    assert await auth.invalidate(creds) is False
    assert await auth.credentials() == creds
    assert SECRET not in repr(auth)


async def test_basic_auth_is_base64_of_username_and_password() -> None:
    auth = BasicAuth("admin", "pä$$")
    creds = await auth.credentials()
    assert creds.authorization == "Basic " + base64.b64encode("admin:pä$$".encode()).decode()
    assert creds.client_certificate is None
    assert await auth.invalidate(creds) is False
    assert "pä$$" not in repr(auth) and "admin" in repr(auth)


def test_every_provider_fits_the_protocol(tmp_path: Path) -> None:
    # mypy checks these assignments; at run time each has both async methods.
    providers: list[CredentialProvider] = [
        BearerTokenAuth("t"),
        BasicAuth("u", "p"),
        TokenFileAuth(tmp_path / "token"),
        ExecAuth(ExecConfig(command="x")),
    ]
    for provider in providers:
        assert callable(provider.credentials) and callable(provider.invalidate)


# -- token file ----------------------------------------------------------------------------


async def test_token_file_is_re_read_once_the_period_has_passed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "token"
    path.write_text("one\n")
    auth = TokenFileAuth(path, period=60)
    seen = [(await auth.credentials()).authorization]
    path.write_text("two")
    await trio.sleep(30)
    seen.append((await auth.credentials()).authorization)  # still cached
    await trio.sleep(31)
    seen.append((await auth.credentials()).authorization)
    assert seen == ["Bearer one", "Bearer one", "Bearer two"]


async def test_token_file_invalidate_re_reads_at_once_and_says_whether_it_changed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    auth = TokenFileAuth(path, period=3600)
    old = await auth.credentials()
    assert await auth.invalidate(old) is False  # same file, same token: no retry
    path.write_text("new")
    assert await auth.invalidate(old) is True
    new = await auth.credentials()
    assert new.authorization == "Bearer new"
    # A second request refused with the old token: the fresh one still differs.
    assert await auth.invalidate(old) is True
    assert await auth.invalidate(new) is False


async def test_token_file_keeps_the_last_token_if_the_file_vanishes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    path = tmp_path / "token"
    path.write_text(SECRET)
    auth = TokenFileAuth(path, period=1, clock=lambda: now[0])
    creds = await auth.credentials()
    path.unlink()
    now[0] = 10
    with caplog.at_level(logging.DEBUG):
        assert await auth.credentials() == creds
        assert await auth.invalidate(creds) is False
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert all(str(path) in r.getMessage() for r in caplog.records)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


async def test_unreadable_token_file_without_a_previous_token_is_a_clear_error(
    tmp_path: Path,
) -> None:
    auth = TokenFileAuth(tmp_path / "absent", clock=lambda: 0.0)
    with pytest.raises(KubeconfigError, match=r"cannot read token file .*absent"):
        await auth.credentials()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KubeconfigError, match=r"empty.*: empty file"):
        await TokenFileAuth(tmp_path / "empty", clock=lambda: 0.0).credentials()


async def test_token_file_that_is_not_text_is_reported_without_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\xfe" + SECRET.encode())
    with pytest.raises(KubeconfigError, match="not UTF-8 text") as info:
        await TokenFileAuth(path, clock=lambda: 0.0).credentials()
    assert "xfe" not in str(info.value) and SECRET not in str(info.value)


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
if mode == "same":
    status["token"] = "tok-same"
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


async def token(auth: CredentialProvider) -> str | None:
    return (await auth.credentials()).authorization


@pytest.mark.parametrize("api_version", [V1, V1BETA1])
async def test_exec_plugin_gets_args_env_and_exec_info(plugin: Path, api_version: str) -> None:
    auth = exec_auth(plugin, api_version=api_version, PLUGIN_FLAVOUR="mint")
    assert await auth.credentials() == Credentials(authorization="Bearer tok-1")
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
    await auth.credentials()
    assert runs(plugin)[0]["info"]["spec"] == {"interactive": False}


async def test_exec_credential_is_cached_until_it_expires(plugin: Path) -> None:
    clock = [datetime(2030, 1, 1, 12, 0, tzinfo=UTC)]
    expires = "2030-01-01T12:10:00Z"
    auth = exec_auth(plugin, now=lambda: clock[0], PLUGIN_EXPIRES=expires)
    seen = [await token(auth)]
    clock[0] += timedelta(minutes=9, seconds=59)
    seen.append(await token(auth))
    assert seen == ["Bearer tok-1", "Bearer tok-1"]
    clock[0] += timedelta(seconds=1)
    assert await token(auth) == "Bearer tok-2"
    assert auth.runs == 2


async def test_exec_credential_without_expiry_is_cached_until_invalidated(plugin: Path) -> None:
    auth = exec_auth(plugin)
    sent = await auth.credentials()
    assert await auth.credentials() is sent
    assert auth.runs == 1
    assert await auth.invalidate(sent) is True
    assert await token(auth) == "Bearer tok-2"
    assert await token(auth) == "Bearer tok-2"
    assert auth.runs == 2


async def test_invalidating_credentials_no_longer_cached_does_not_run_the_plugin(
    plugin: Path,
) -> None:
    auth = exec_auth(plugin)
    first = await auth.credentials()
    assert await auth.invalidate(first) is True
    # Another request, refused with the first token, arrives late: tok-2 is already here.
    assert await auth.invalidate(first) is True
    assert await token(auth) == "Bearer tok-2"
    assert auth.runs == 2


async def test_invalidate_is_false_when_the_plugin_returns_the_same_credentials(
    plugin: Path,
) -> None:
    auth = exec_auth(plugin, PLUGIN_MODE="same")
    sent = await auth.credentials()
    assert await auth.invalidate(sent) is False  # a retry would be refused again
    assert auth.runs == 2


async def test_concurrent_callers_share_one_plugin_run(plugin: Path) -> None:
    auth = exec_auth(plugin)
    seen: list[str | None] = []

    async def ask() -> None:
        seen.append(await token(auth))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(ask)
    assert seen == ["Bearer tok-1"] * 5
    assert auth.runs == 1


async def test_concurrent_401s_with_the_same_credentials_share_one_re_run(plugin: Path) -> None:
    auth = exec_auth(plugin)
    stale = await auth.credentials()
    answers: list[bool] = []

    async def refused() -> None:
        answers.append(await auth.invalidate(stale))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(refused)
    assert answers == [True] * 5
    assert auth.runs == 2
    assert await token(auth) == "Bearer tok-2"


async def test_exec_client_certificate_travels_in_the_credentials(plugin: Path) -> None:
    creds = await exec_auth(plugin, PLUGIN_MODE="cert").credentials()
    assert creds.client_certificate == (b"CERT-PEM", b"KEY-PEM")
    assert creds.authorization is None  # no token: the certificate authenticates
    assert "PEM" not in repr(creds)


async def test_exec_token_and_certificate_together(plugin: Path) -> None:
    creds = await exec_auth(plugin, PLUGIN_MODE="both").credentials()
    assert creds == Credentials(
        authorization="Bearer tok-1", client_certificate=(b"CERT-PEM", b"KEY-PEM")
    )


async def test_exec_plugin_logs_name_the_command_never_the_credential(
    plugin: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth = exec_auth(plugin, PLUGIN_MODE="both")
    with caplog.at_level(logging.DEBUG):
        await auth.invalidate(await auth.credentials())
    messages = [r.getMessage() for r in caplog.records]
    assert any("running it again" in m for m in messages)
    assert all(str(plugin) in m for m in messages)
    assert not any("tok-" in m or "PEM" in m for m in messages)


async def test_exec_plugin_failure_names_the_command_not_its_output(plugin: Path) -> None:
    auth = exec_auth(plugin, PLUGIN_MODE="fail")
    with pytest.raises(ExecPluginError) as info:
        await auth.credentials()
    message = str(info.value)
    assert str(plugin) in message and "exit code 3" in message
    assert "secret" not in message


async def test_exec_plugin_failing_on_a_re_run_raises_from_invalidate(plugin: Path) -> None:
    auth = exec_auth(plugin)
    sent = await auth.credentials()
    object.__setattr__(auth.config, "command", str(plugin.parent / "gone"))
    with pytest.raises(ExecPluginError, match="not found"):
        await auth.invalidate(sent)


async def test_exec_plugin_garbage_output_is_reported_without_it(plugin: Path) -> None:
    with pytest.raises(ExecPluginError, match="did not print valid JSON") as info:
        await exec_auth(plugin, PLUGIN_MODE="garbage").credentials()
    assert "secret" not in str(info.value)


async def test_exec_plugin_with_the_wrong_api_version_is_rejected(plugin: Path) -> None:
    auth = exec_auth(plugin, PLUGIN_API_VERSION=V1BETA1)
    with pytest.raises(ExecPluginError, match=r"configured for .*/v1, but returned"):
        await auth.credentials()


async def test_missing_exec_plugin_shows_the_install_hint(tmp_path: Path) -> None:
    config = ExecConfig(
        command=str(tmp_path / "no-such-plugin"),
        install_hint="brew install\n no-such-plugin",
        interactive_mode="Never",
    )
    with pytest.raises(ExecPluginError, match=r"not found \(brew install no-such-plugin\)"):
        await ExecAuth(config).credentials()


async def test_exec_plugin_needing_a_terminal_is_refused(plugin: Path) -> None:
    auth = exec_auth(plugin)
    object.__setattr__(auth.config, "interactive_mode", "Always")
    with pytest.raises(ExecPluginError, match="requires interactive mode"):
        await auth.credentials()
    assert runs(plugin) == []


def test_exec_auth_refuses_unknown_api_versions(plugin: Path) -> None:
    with pytest.raises(ExecPluginError, match="unsupported apiVersion"):
        ExecAuth(ExecConfig(command=str(plugin), api_version="client.authentication.k8s.io/v9"))


def test_exec_auth_repr_names_the_command_only(plugin: Path) -> None:
    auth = exec_auth(plugin, PLUGIN_FLAVOUR=SECRET)
    assert repr(auth) == f"ExecAuth({str(plugin)!r})"
    assert SECRET not in repr(auth.config)
