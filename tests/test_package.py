"""The public surface: what `trio_controller` exports, the native building blocks in
`trio_controller.native`, and modules that import on their own (no import cycles)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import trio_controller
import trio_controller.native
from trio_controller import _native

PACKAGE = Path(trio_controller.__file__).parent


def test_native_module_reports_the_crate_version() -> None:
    assert trio_controller.__version__ == "0.1.0"


def test_every_exported_name_exists_and_a_controller_needs_nothing_else() -> None:
    for name in trio_controller.__all__:
        assert getattr(trio_controller, name) is not None, name
    for needed in ("Client", "load_config", "Resource", "PODS", "Api", "Discovery",
                   "Controller", "Requeue", "Informer", "EventHandlers",
                   "SharedInformerFactory", "LeaderElector", "ApiError", "NotFound",
                   "EventRecorder", "finalizer"):  # fmt: skip
        assert needed in trio_controller.__all__, needed


def test_the_native_building_blocks_live_in_their_own_submodule() -> None:
    for name in trio_controller.native.__all__:
        assert getattr(trio_controller.native, name) is getattr(
            _native, "WorkQueue" if name == "NativeWorkQueue" else name
        )
    assert {"Store", "WatchDecoder", "ListAccumulator", "FeedResult", "RateLimiter"} <= set(
        trio_controller.native.__all__
    )
    top = set(trio_controller.__all__)
    assert not top & {"Store", "WatchDecoder", "ListAccumulator", "FeedResult", "RateLimiter"}
    # The Trio queue is the public one.
    assert trio_controller.WorkQueue is not _native.WorkQueue


def test_the_native_building_blocks_are_only_in_trio_controller_native() -> None:
    for name in ("Store", "ListAccumulator", "Reflector", "WatchDecoder"):
        assert not hasattr(trio_controller, name), name
    with pytest.raises(ImportError):
        exec("from trio_controller import Store")


def modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports_on_its_own() -> None:
    """A cycle shows up as an ImportError when a module in it is imported first: each
    module is imported into a namespace holding none of the package but the extension."""
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        "for m in sys.argv[1:]:\n"
        "    for loaded in [k for k in sys.modules if k.startswith('trio_controller')]:\n"
        "        if loaded != 'trio_controller._native':\n"
        "            del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{m}: {exc!r}')\n"
        "print('\\n'.join(failed))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, *modules()], capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == ""
