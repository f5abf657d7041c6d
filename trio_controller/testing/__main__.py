"""``python -m trio_controller.testing [run] --kubeconfig-out PATH``: run a test control
plane in the foreground (``--crd PATH`` installs CRDs first). Prints one line ``ready``
to stdout once it serves; SIGINT or SIGTERM stops it cleanly (exit 0). Diagnostics go to
stderr.

``python -m trio_controller.testing install [--dir DIR]``: build kube-apiserver and etcd
into the user cache (see `_install`); prints the folder holding them.
``python -m trio_controller.testing path``: prints the folder that would be used.
Missing binaries are one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from trio_controller.testing._assets import INSTALL_COMMAND, AssetsNotFound, find_assets
from trio_controller.testing._install import InstallError, install
from trio_controller.testing.envtest import DEFAULT_START_TIMEOUT, EnvTestError, open_envtest
from trio_controller.testing.info import EnvInfo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trio_controller.testing",
        description="Run a real kube-apiserver and etcd on loopback until SIGINT/SIGTERM.",
        epilog=f"other commands: `{INSTALL_COMMAND} [--dir DIR]` builds the binaries with Go "
        "into ~/.cache/trio-controller/testenv/; `python -m trio_controller.testing path` "
        "prints the folder used. KUBEBUILDER_ASSETS (e.g. from setup-envtest) overrides both.",
    )
    parser.add_argument(
        "--kubeconfig-out", type=Path, required=True, help="write the admin kubeconfig here"
    )
    parser.add_argument(
        "--token-kubeconfig-out", type=Path, help="write the bearer-token kubeconfig here"
    )
    parser.add_argument(
        "--info-out", type=Path, help="write server URL, CA and credential paths here (JSON)"
    )
    parser.add_argument(
        "--work-dir", type=Path, help="keep certificates, logs and etcd data here (kept)"
    )
    parser.add_argument("--assets-dir", type=Path, help="folder with kube-apiserver and etcd")
    parser.add_argument("--start-timeout", type=float, default=DEFAULT_START_TIMEOUT)
    parser.add_argument(
        "--crd",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="install the CRDs of this YAML/JSON file or folder before `ready` (repeatable)",
    )
    parser.add_argument(
        "--stop-on-stdin-close",
        action="store_true",
        help="also stop when stdin reaches end of file (the parent process went away)",
    )
    return parser


def _install_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=INSTALL_COMMAND,
        description="Build kube-apiserver and etcd (the versions pinned with this package) "
        "with Go into ~/.cache/trio-controller/testenv/<key>/ ($TRIO_CONTROLLER_CACHE moves "
        "it), where open_envtest() finds them; nothing is built when they are there already. "
        "Prints the folder holding them. Needs Go, bash and flock; a cold build takes several "
        "minutes. Alternative: setup-envtest, then KUBEBUILDER_ASSETS=<its folder>.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="also copy both binaries into DIR (for KUBEBUILDER_ASSETS=DIR)",
    )
    return parser


def _path_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m trio_controller.testing path",
        description="Print the folder holding kube-apiserver and etcd that open_envtest() "
        "would use, or why there is none (exit 1).",
    )


def _install_main(argv: list[str]) -> int:
    args = _install_parser().parse_args(argv)
    try:
        folder = install(args.dir)
    except InstallError as error:
        print(f"envtest: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # build.sh removes its partial build itself
        return 130
    print(folder)
    return 0


def _path_main(argv: list[str]) -> int:
    _path_parser().parse_args(argv)
    try:
        print(find_assets())
    except AssetsNotFound as error:
        print(f"envtest: {error}", file=sys.stderr)
        return 1
    return 0


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for _ in signals:
        scope.cancel()
        return


async def _cancel_on_stdin_close(scope: trio.CancelScope) -> None:
    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stream:
        while await stream.receive_some():
            pass
    scope.cancel()


async def _serve(args: argparse.Namespace) -> None:
    # Installed before start-up, so a signal during it is a clean stop too.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
            if args.stop_on_stdin_close:
                nursery.start_soon(_cancel_on_stdin_close, nursery.cancel_scope)
            await _run(args)


def _write_outputs(info: EnvInfo, args: argparse.Namespace) -> None:
    shutil.copyfile(info.admin_kubeconfig, args.kubeconfig_out)
    if args.token_kubeconfig_out:
        shutil.copyfile(info.token_kubeconfig, args.token_kubeconfig_out)
    if args.info_out:
        info.dump(args.info_out)


async def _run(args: argparse.Namespace) -> None:
    async with open_envtest(
        assets_dir=args.assets_dir,
        work_dir=args.work_dir,
        start_timeout=args.start_timeout,
        crds=args.crd,
    ) as env:
        await trio.to_thread.run_sync(_write_outputs, env.info, args)
        print(f"envtest: {env.server} {env.pids}", file=sys.stderr, flush=True)
        print("ready", flush=True)
        await trio.sleep_forever()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["install"]:
        return _install_main(argv[1:])
    if argv[:1] == ["path"]:
        return _path_main(argv[1:])
    args = _parser().parse_args(argv[1:] if argv[:1] == ["run"] else argv)
    try:
        find_assets(args.assets_dir)  # before anything starts: one line, exit 1
    except AssetsNotFound as error:
        print(f"envtest: {error}", file=sys.stderr)
        return 1
    failed = False
    try:
        trio.run(_serve, args)
    except* (EnvTestError, AssetsNotFound) as group:
        failed = True
        for error in group.exceptions:
            print(f"envtest: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
