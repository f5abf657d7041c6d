"""One child process of the control plane: started with its output in a log file,
stopped with SIGTERM then SIGKILL, never left running."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

import trio

STOP_GRACE_SECONDS = 10.0
_WAIT_INTERVAL = 0.02
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, or a note that it is missing."""
    try:
        with path.open("rb") as f:
            tail = deque(f, maxlen=lines)
    except FileNotFoundError:
        return f"(no log at {path})"
    return b"".join(tail).decode("utf-8", "replace")


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a pre-exec hook that makes the kernel SIGKILL the child when our process
    dies (even by SIGKILL), so a crashed test run leaves no control plane behind.
    The signal follows the thread that forks, so we fork from the main thread."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )


class ChildProcess:
    """A named child process whose stdout and stderr go to `log` (appended)."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while running (or never started), else the exit status."""
        return None if self._process is None else self._process.poll()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        """Spawn the process (a fork and exec, done synchronously in the Trio thread so the
        parent-death signal stays tied to our main thread). Its own session keeps a
        terminal's Ctrl-C from reaching it before we stop the control plane in order."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        await trio.lowlevel.checkpoint()
        self._process = _spawn(self.argv, self.log)

    async def _wait(self) -> None:
        process = self._process
        assert process is not None
        if process.poll() is not None:
            return
        if hasattr(os, "pidfd_open"):
            fd = os.pidfd_open(process.pid)  # readable once the process has exited
            try:
                await trio.lowlevel.wait_readable(fd)
            finally:
                trio.lowlevel.notify_closing(fd)
                os.close(fd)
            process.wait()  # reaps at once
            return
        while process.poll() is None:  # noqa: ASYNC110 (no pidfd: poll)
            await trio.sleep(_WAIT_INTERVAL)

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; always waits for the exit.
        Runs to completion even inside a cancelled scope."""
        process = self._process
        if process is None:
            return
        with trio.CancelScope(shield=True):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(grace):
                    await self._wait()
                if process.poll() is None:
                    process.kill()
                    await self._wait()
