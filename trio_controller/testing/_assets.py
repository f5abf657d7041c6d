"""Where the kube-apiserver and etcd binaries come from.

In order: the `assets_dir` argument; else ``$KUBEBUILDER_ASSETS`` (controller-runtime's
convention, e.g. from ``setup-envtest``), which then is the only place looked at; else, in
a checkout, ``testenv/bin`` (``make testenv``); else the user cache that
``python -m trio_controller.testing install`` and ``testenv/build.sh`` fill:
``$TRIO_CONTROLLER_CACHE`` (default ``~/.cache/trio-controller``) ``/testenv/<key>/``.

The key is build.sh's: a hash of the pinned recipe (``go.mod``, ``go.sum``, ``build.sh``,
shipped in ``_testenv/``) and of the Go version, so a checkout and an installed package of
the same pins share one build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

BINARIES = ("kube-apiserver", "etcd")
INSTALL_COMMAND = "python -m trio_controller.testing install"
# The recipe as shipped in the wheel: copies of testenv/go.mod, go.sum and build.sh.
RECIPE = Path(__file__).resolve().parent / "_testenv"
RECIPE_FILES = ("go.mod", "go.sum", "build.sh")
_CHECKOUT = Path(__file__).resolve().parents[2]


class AssetsNotFound(FileNotFoundError):
    pass


def cache_root() -> Path:
    """``$TRIO_CONTROLLER_CACHE/testenv``, default ``~/.cache/trio-controller/testenv``
    (the folder testenv/build.sh builds into)."""
    base = os.environ.get("TRIO_CONTROLLER_CACHE") or str(Path.home() / ".cache/trio-controller")
    return Path(base) / "testenv"


def go_env(recipe: Path = RECIPE) -> bytes | None:
    """``go env GOVERSION GOOS GOARCH`` run in the recipe's folder, as build.sh runs it
    (the go.mod there may select a toolchain); None without a working ``go``."""
    go = shutil.which("go")
    if go is None:
        return None
    try:
        done = subprocess.run(
            [go, "env", "GOVERSION", "GOOS", "GOARCH"],
            cwd=recipe,
            capture_output=True,
            check=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def cache_key(recipe: Path, go_environment: bytes) -> str:
    """build.sh's key: the first 16 hex digits of the SHA-256 of go.mod, go.sum, build.sh,
    the folder's ``*.go`` files (sorted by path) and the ``go env`` lines."""
    digest = hashlib.sha256()
    for name in RECIPE_FILES:
        digest.update((recipe / name).read_bytes())
    sources = sorted(p for p in recipe.rglob("*.go") if p.relative_to(recipe).parts[0] != "bin")
    for path in sources:
        digest.update(path.read_bytes())
    digest.update(go_environment)
    return digest.hexdigest()[:16]


def cached_assets() -> Path | None:
    """The cache folder for the shipped recipe and the installed Go, None without Go."""
    environment = go_env()
    if environment is None:
        return None
    return cache_root() / cache_key(RECIPE, environment)


def has_binaries(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in BINARIES)


def _checkout_bin() -> Path | None:
    """``testenv/bin`` when this package runs from a checkout (not when installed)."""
    testenv = _CHECKOUT / "testenv"
    return testenv / "bin" if (testenv / "build.sh").is_file() else None


def find_assets(assets_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding both binaries (see the module's docstring for the order).
    Raises `AssetsNotFound` with one line naming where it looked and how to get them."""
    if assets_dir is not None:
        candidates = [Path(assets_dir)]
        where = str(assets_dir)
    elif os.environ.get("KUBEBUILDER_ASSETS"):
        candidates = [Path(os.environ["KUBEBUILDER_ASSETS"])]
        where = f"KUBEBUILDER_ASSETS={candidates[0]}"
    else:
        checkout = _checkout_bin()
        if checkout is not None and has_binaries(checkout):
            return checkout
        cached = cached_assets()
        if cached is not None and has_binaries(cached):
            return cached
        candidates = [p for p in (checkout, cached) if p is not None]
        where = ", ".join(map(str, candidates))
        if cached is None:
            where += f"{', ' if candidates else ''}{cache_root()} (no `go` to compute its key)"
    for folder in candidates:
        if has_binaries(folder):
            return folder
    make = "`make testenv` or " if _checkout_bin() is not None else ""
    raise AssetsNotFound(
        f"no executable {' and '.join(BINARIES)} in {where}; run {make}`{INSTALL_COMMAND}` "
        "(builds them with Go), or set KUBEBUILDER_ASSETS to a folder holding both "
        "(e.g. from setup-envtest)"
    )
