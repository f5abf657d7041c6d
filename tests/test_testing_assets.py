"""Where `trio_controller.testing` finds kube-apiserver and etcd, the one-line error when it
finds none, and `python -m trio_controller.testing install` (build.sh run from the recipe
shipped in the package, here with a stand-in `go` so no real build runs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import trio_controller
from trio_controller.testing import _assets
from trio_controller.testing._assets import (
    RECIPE,
    RECIPE_FILES,
    AssetsNotFound,
    cache_key,
    find_assets,
)
from trio_controller.testing._install import install

TESTENV = Path(__file__).resolve().parents[1] / "testenv"
PACKAGE_ROOT = Path(trio_controller.__file__).resolve().parents[1]

# A stand-in for `go`: fixed `go env` lines, a version for `go list -m`, and `go build -o X`
# writes a small executable X and logs the build.
FAKE_GO = r"""#!/usr/bin/env bash
set -euo pipefail
case "$1" in
  env) printf 'go1.99.0\nlinux\namd64\n' ;;
  list) echo v1.37.2 ;;
  build)
    out=""
    while [[ $# -gt 0 ]]; do [[ "$1" == -o ]] && out=$2; shift; done
    printf '#!/bin/sh\necho built\n' >"$out"; chmod +x "$out"
    echo "$out" >>"$FAKE_GO_LOG" ;;
  *) exit 2 ;;
esac
"""


def _executables(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("kube-apiserver", "etcd"):
        path = folder / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return folder


def _run_module(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """In `cwd`, importing the same `trio_controller` as this test process."""
    path = [str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    return subprocess.run(
        [sys.executable, "-m", "trio_controller.testing", *args],
        env={**env, "PYTHONPATH": os.pathsep.join(path)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def no_binaries_env(tmp_path: Path) -> dict[str, str]:
    """KUBEBUILDER_ASSETS names an empty folder; HOME (so the cache) is empty too."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TRIO_CONTROLLER_CACHE"}
    env.update(KUBEBUILDER_ASSETS=str(tmp_path / "empty"), HOME=str(tmp_path / "home"))
    return env


@pytest.mark.parametrize("command", [["--kubeconfig-out", "kc"], ["path"]])
def test_no_binaries_is_one_line_naming_kubebuilder_assets_and_the_install_command(
    tmp_path: Path, no_binaries_env: dict[str, str], command: list[str]
) -> None:
    done = _run_module(*command, env=no_binaries_env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "KUBEBUILDER_ASSETS" in lines[0]
    assert str(tmp_path / "empty") in lines[0]
    assert "python -m trio_controller.testing install" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "kc").exists()


def test_the_path_command_prints_the_folder_kubebuilder_assets_names(tmp_path: Path) -> None:
    folder = _executables(tmp_path / "assets")
    env = {**os.environ, "KUBEBUILDER_ASSETS": str(folder)}
    done = _run_module("path", env=env, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{folder}\n", "")


def test_an_installed_package_finds_the_keyed_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_assets, "_checkout_bin", lambda: None)  # as if pip-installed
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("TRIO_CONTROLLER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_assets, "go_env", lambda recipe=RECIPE: b"go1.99.0\nlinux\namd64\n")
    key = cache_key(RECIPE, b"go1.99.0\nlinux\namd64\n")
    with pytest.raises(AssetsNotFound) as missing:
        find_assets()
    assert str(tmp_path / "cache" / "testenv" / key) in str(missing.value)
    assert "make testenv" not in str(missing.value)
    _executables(tmp_path / "cache" / "testenv" / "0123456789abcdef")  # another pin: ignored
    with pytest.raises(AssetsNotFound):
        find_assets()
    folder = _executables(tmp_path / "cache" / "testenv" / key)
    assert find_assets() == folder


def test_kubebuilder_assets_is_the_only_place_looked_at_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_assets, "_checkout_bin", lambda: _executables(tmp_path / "checkout"))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path / "elsewhere"))
    with pytest.raises(AssetsNotFound, match="KUBEBUILDER_ASSETS="):
        find_assets()
    assert find_assets(tmp_path / "checkout") == tmp_path / "checkout"


@pytest.mark.parametrize("name", RECIPE_FILES)
def test_the_shipped_recipe_is_the_repositorys_testenv(name: str) -> None:
    assert (RECIPE / name).read_bytes() == (TESTENV / name).read_bytes(), (
        f"copy testenv/{name} to {RECIPE}/ (the wheel ships that copy)"
    )


def test_the_cache_key_is_the_one_build_sh_computed() -> None:
    written = TESTENV / "bin" / ".key"
    if not written.is_file():
        pytest.skip("testenv/bin/.key appears with `make testenv`")
    environment = _assets.go_env(TESTENV)
    assert environment is not None
    assert cache_key(TESTENV, environment) == written.read_text().strip()


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("flock") is None, reason="needs bash and flock"
)
def test_install_runs_the_shipped_build_sh_into_the_keyed_cache_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "go").write_text(FAKE_GO)
    (bin_dir / "go").chmod(0o755)
    log = tmp_path / "builds.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GO_LOG", str(log))
    monkeypatch.setenv("TRIO_CONTROLLER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path / "ignored-by-install"))
    monkeypatch.setattr(_assets, "_checkout_bin", lambda: None)

    folder = install()
    expected = tmp_path / "cache" / "testenv" / cache_key(RECIPE, b"go1.99.0\nlinux\namd64\n")
    assert folder == expected  # build.sh's key and ours agree
    assert sorted(p.name for p in folder.iterdir()) == ["etcd", "kube-apiserver"]
    assert len(log.read_text().splitlines()) == 2

    copied = install(tmp_path / "assets")  # cached: no second build, copies only
    assert len(log.read_text().splitlines()) == 2
    assert copied == (tmp_path / "assets").resolve()
    assert subprocess.run([copied / "etcd"], capture_output=True, text=True).stdout == "built\n"
    monkeypatch.delenv("KUBEBUILDER_ASSETS")
    assert find_assets() == expected


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("flock") is None, reason="needs bash and flock"
)
def test_the_install_command_prints_the_folder_and_logs_to_stderr(tmp_path: Path) -> None:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "go").write_text(FAKE_GO)
    (bin_dir / "go").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GO_LOG": str(tmp_path / "builds.log"),
        "TRIO_CONTROLLER_CACHE": str(tmp_path / "cache"),
    }
    done = _run_module("install", "--dir", "assets", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'assets'}\n"
    assert "testenv: building kube-apiserver v1.37.2" in done.stderr
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == ["etcd", "kube-apiserver"]


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("flock") is None, reason="needs bash and flock"
)
def test_install_without_go_is_one_line_naming_the_alternative(tmp_path: Path) -> None:
    tools = tmp_path / "tools"  # bash and flock, but no go
    tools.mkdir()
    for tool in ("bash", "flock"):
        (tools / tool).symlink_to(shutil.which(tool) or tool)
    env = {**os.environ, "PATH": str(tools), "TRIO_CONTROLLER_CACHE": str(tmp_path / "cache")}
    done = _run_module("install", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("envtest: `go` not found on PATH")
    assert "KUBEBUILDER_ASSETS" in line and "setup-envtest" in line
    assert not (tmp_path / "cache").exists()
