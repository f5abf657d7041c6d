"""Where the kube-apiserver and etcd binaries come from."""

from __future__ import annotations

import os
from pathlib import Path

BINARIES = ("kube-apiserver", "etcd")
# In a checkout, `make testenv` (testenv/build.sh) puts them here.
_REPO_BIN = Path(__file__).resolve().parents[2] / "testenv" / "bin"


class AssetsNotFound(FileNotFoundError):
    pass


def find_assets(assets_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding both binaries: `assets_dir`, else ``$KUBEBUILDER_ASSETS``
    (the controller-runtime convention), else the checkout's ``testenv/bin``."""
    candidates: list[Path] = []
    if assets_dir is not None:
        candidates.append(Path(assets_dir))
    elif os.environ.get("KUBEBUILDER_ASSETS"):
        candidates.append(Path(os.environ["KUBEBUILDER_ASSETS"]))
    else:
        candidates.append(_REPO_BIN)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in BINARIES):
            return folder
    raise AssetsNotFound(
        f"no executable {' and '.join(BINARIES)} in {', '.join(map(str, candidates))}; "
        "run `make testenv` or set KUBEBUILDER_ASSETS"
    )
