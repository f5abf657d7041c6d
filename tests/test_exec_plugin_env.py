"""Exec credential plugins run like kubectl runs them: no shell (arguments arrive verbatim),
stdin not the terminal, and the environment kubectl gives them: the process's, then the
exec stanza's `env`, then KUBERNETES_EXEC_INFO. A real plugin process records what it got."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from trio_controller.auth import ExecAuth
from trio_controller.config import load_config

V1 = "client.authentication.k8s.io/v1"
SERVER = "https://127.0.0.1:6443"
NASTY_ARGS = [
    "$(touch PWNED)",
    "`touch PWNED2`",
    "a; touch PWNED3",
    "two  words",
    "*",
    "'single' \"double\"",
    "$HOME",
    "",
    "back\\slash",
    "|& >out <in",
]

RECORDER = """\
import json, os, sys
record = {
    "argv": sys.argv[1:],
    "argv0": sys.argv[0],
    "env": dict(os.environ),
    "ppid": os.getppid(),
    "parent": open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\\0")[0].decode(),
    "stdin_is_devnull": os.path.samestat(os.fstat(0), os.stat(os.devnull)),
}
with open(os.environ["RECORD_TO"], "w") as f:
    json.dump(record, f)
print(json.dumps({"apiVersion": %r, "kind": "ExecCredential", "status": {"token": "t"}}))
"""


def write_plugin(path: Path) -> Path:
    path.write_text(f"#!{sys.executable}\n" + RECORDER % V1)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def kubeconfig(path: Path, exec_stanza: dict[str, Any], ca_pem: bytes | None = None) -> Path:
    cluster: dict[str, Any] = {
        "server": SERVER,
        "extensions": [
            {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "x"}}
        ],
    }
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    else:
        cluster["insecure-skip-tls-verify"] = True
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"exec": exec_stanza}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


async def run_plugin(config_path: Path, record: Path) -> dict[str, Any]:
    config = load_config(config_path, environ={})
    auth = config.auth
    assert isinstance(auth, ExecAuth)
    credentials = await auth.credentials()
    assert credentials.authorization == "Bearer t"
    recorded: dict[str, Any] = json.loads(await trio.Path(record).read_text())
    return recorded


async def test_arguments_arrive_verbatim_without_a_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = tmp_path / "kube"
    kube.mkdir()
    write_plugin(kube / "plugin")
    work = tmp_path / "work"  # the working directory, where a shell would create PWNED*
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RECORD_TO", str(tmp_path / "record.json"))
    stanza = {
        "apiVersion": V1,
        "command": "./plugin",
        "args": NASTY_ARGS,
        "interactiveMode": "Never",
    }
    got = await run_plugin(kubeconfig(kube / "config", stanza), tmp_path / "record.json")
    assert got["argv"] == NASTY_ARGS
    # `./plugin` resolves against the kubeconfig's folder, not the working directory.
    assert got["argv0"] == str(kube / "plugin")
    assert got["ppid"] == os.getpid()  # started by us, not by a shell in between
    assert Path(got["parent"]).name.startswith("python")
    assert list(work.iterdir()) == []  # nothing ran `touch`, nothing redirected
    assert got["stdin_is_devnull"]


async def test_the_environment_is_the_process_then_the_stanza_then_exec_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(tmp_path / "bin-plugin")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RECORD_TO", str(tmp_path / "record.json"))
    monkeypatch.setenv("TC_FROM_PROCESS", "process value")
    monkeypatch.setenv("TC_OVERRIDDEN", "from the process")
    monkeypatch.setenv("KUBERNETES_EXEC_INFO", "stale value from the process")
    stanza = {
        "apiVersion": V1,
        "command": "bin-plugin",  # no slash: looked up in PATH, like kubectl
        "interactiveMode": "Never",
        "provideClusterInfo": True,
        "env": [
            {"name": "TC_FROM_STANZA", "value": "stanza $(value); x"},
            {"name": "TC_OVERRIDDEN", "value": "from the stanza"},
        ],
    }
    ca_pem = b"-----BEGIN CERTIFICATE-----\nnot parsed here\n-----END CERTIFICATE-----\n"
    got = await run_plugin(
        kubeconfig(tmp_path / "config", stanza, ca_pem), tmp_path / "record.json"
    )
    env = got["env"]
    assert env["TC_FROM_PROCESS"] == "process value"
    assert env["TC_FROM_STANZA"] == "stanza $(value); x"
    assert env["TC_OVERRIDDEN"] == "from the stanza"
    assert env["PATH"] == os.environ["PATH"]
    info = json.loads(env["KUBERNETES_EXEC_INFO"])
    assert info == {
        "apiVersion": V1,
        "kind": "ExecCredential",
        "spec": {
            "interactive": False,
            "cluster": {
                "server": SERVER,
                "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                "config": {"audience": "x"},
            },
        },
    }


async def test_without_provide_cluster_info_the_cluster_is_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(tmp_path / "plugin")
    monkeypatch.setenv("RECORD_TO", str(tmp_path / "record.json"))
    stanza = {"apiVersion": V1, "command": "./plugin", "interactiveMode": "IfAvailable"}
    got = await run_plugin(kubeconfig(tmp_path / "config", stanza), tmp_path / "record.json")
    info = json.loads(got["env"]["KUBERNETES_EXEC_INFO"])
    assert info == {"apiVersion": V1, "kind": "ExecCredential", "spec": {"interactive": False}}
