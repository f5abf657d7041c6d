"""``python -m trio_controller.testing install``: build kube-apiserver and etcd from the
pinned Go modules into the user cache, with the repository's own testenv/build.sh.

The shipped recipe (``_testenv/``: go.mod, go.sum, build.sh) is copied to a temporary
folder and build.sh runs there, so the cache key, the build flags and the one-build-at-a-
time lock are exactly those of ``make testenv`` in a checkout of the same version.
Needs bash, flock and Go (the version go.mod names, or one that can fetch it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from trio_controller.testing._assets import (
    BINARIES,
    RECIPE,
    RECIPE_FILES,
    cache_key,
    cache_root,
    go_env,
    has_binaries,
)


class InstallError(RuntimeError):
    pass


def _require(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise InstallError(
            f"`{tool}` not found on PATH ({why}); install it, or set KUBEBUILDER_ASSETS to a "
            "folder holding kube-apiserver and etcd (e.g. from setup-envtest)"
        )
    return path


def install(dest: Path | None = None) -> Path:
    """Build (or find already built) both binaries in the user cache; with `dest`, also
    copy them there. Returns the folder to use as ``KUBEBUILDER_ASSETS``. Build output
    goes to stderr."""
    bash = _require("bash", "it runs build.sh")
    _require("flock", "build.sh takes a lock so that one build runs at a time")
    _require("go", "the binaries are built from Go modules")
    environment = go_env()
    if environment is None:
        raise InstallError("`go env` failed; is the Go installation working?")
    cached = cache_root() / cache_key(RECIPE, environment)
    if not has_binaries(cached):
        with tempfile.TemporaryDirectory(prefix="trio-controller-testenv-") as tmp:
            for name in RECIPE_FILES:
                shutil.copyfile(RECIPE / name, Path(tmp) / name)
            env = {k: v for k, v in os.environ.items() if k != "KUBEBUILDER_ASSETS"}
            env["TRIO_CONTROLLER_CACHE"] = str(cache_root().parent)
            done = subprocess.run(
                [bash, str(Path(tmp) / "build.sh")], env=env, stdout=sys.stderr, check=False
            )
            if done.returncode != 0:
                raise InstallError(f"testenv/build.sh failed (exit {done.returncode})")
        if not has_binaries(cached):
            raise InstallError(f"build.sh finished but {cached} lacks {' and '.join(BINARIES)}")
    if dest is None:
        return cached
    dest.mkdir(parents=True, exist_ok=True)
    for name in BINARIES:  # beside, then renamed: a running copy is replaced, not written
        partial = dest / f".{name}.partial"
        shutil.copy2(cached / name, partial)
        partial.replace(dest / name)
    return dest.resolve()
