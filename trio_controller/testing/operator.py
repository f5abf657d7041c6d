"""Run an operator program as a child process in a test (kopf's `KopfRunner`, on Trio).

    from trio_controller.testing import open_envtest, run_operator

    async with open_envtest() as env:
        async with run_operator("examples/quota_operator.py",
                                kubeconfig=env.admin_kubeconfig) as operator:
            await operator.wait_for_stderr("Caches are synced")
            ...                                          # act on the cluster
            await operator.wait_for_stdout("Set quota of team-a")
            assert await operator.terminate() == 0       # SIGTERM, then the exit code
        assert "Traceback" not in operator.stderr_text

A path ending in `.py` runs as a script and a name without a `/` as a module
(`python -m program`), both with this interpreter (`sys.executable`); any other path is an
executable run as it is (an installed console script, such as
`Path(sys.executable).with_name("trio-controller-sharder")`). Its output is read as it comes,
line by line, into `stdout` and `stderr`. A program still running when the block ends is
killed. Waits raise `AssertionError` carrying the output so far when they time out or
the program exits first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import trio

__all__ = ["OperatorProcess", "run_operator"]


class OperatorProcess:
    """A running operator program: its output lines so far, its exit code once it has
    exited, and waits on both (use `run_operator` to start one)."""

    def __init__(self, process: trio.Process, command: list[str]) -> None:
        self.process = process
        #: The command line it was started with.
        self.command = command
        #: Every complete line printed on stdout so far (without the newline).
        self.stdout: list[str] = []
        #: Every complete line printed on stderr so far.
        self.stderr: list[str] = []
        #: The exit code once it has exited (negative: killed by that signal), else None.
        self.returncode: int | None = None
        self._changed = trio.lowlevel.ParkingLot()

    @property
    def stdout_text(self) -> str:
        """stdout so far as one string."""
        return "\n".join(self.stdout)

    @property
    def stderr_text(self) -> str:
        """stderr so far as one string."""
        return "\n".join(self.stderr)

    async def wait_for_stdout(self, line: str, *, count: int = 1, within: float = 30.0) -> None:
        """Until the exact line `line` has been printed on stdout `count` times."""
        await self._wait_for(
            lambda: self.stdout.count(line) >= count, f"{line!r} x{count} on stdout", within
        )

    async def wait_for_stderr(self, fragment: str, *, within: float = 30.0) -> str:
        """Until a line of stderr contains `fragment`; that line."""
        found: list[str] = []

        def check() -> bool:
            found[:] = [line for line in self.stderr if fragment in line][:1]
            return bool(found)

        await self._wait_for(check, f"{fragment!r} on stderr", within)
        return found[0]

    async def wait(self, *, within: float = 30.0) -> int:
        """Until the program exits; its exit code."""
        await self._wait_for(lambda: self.returncode is not None, "the exit", within, exits=True)
        assert self.returncode is not None
        return self.returncode

    async def terminate(self, *, within: float = 15.0) -> int:
        """Send SIGTERM (as a rollout does) and wait for the exit code."""
        self.send_signal(signal.SIGTERM)
        return await self.wait(within=within)

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the program (if it is still running)."""
        if self.returncode is None:
            self.process.send_signal(sig)

    def __str__(self) -> str:
        return (
            f"{' '.join(self.command)} (exit code {self.returncode})\n"
            f"stdout:\n{self.stdout_text}\nstderr:\n{self.stderr_text}"
        )

    async def _wait_for(
        self, check: Callable[[], bool], what: str, within: float, *, exits: bool = False
    ) -> None:
        with trio.move_on_after(within):
            while not check():
                if self.returncode is not None and not exits:
                    # (the exit code is set once all its output has been read)
                    raise AssertionError(f"exited {self.returncode} before {what}: {self}")
                await self._changed.park()
            return
        raise AssertionError(f"timed out after {within:g}s waiting for {what}: {self}")

    async def _read(self, stream: trio.abc.ReceiveStream, lines: list[str]) -> None:
        buffer = b""
        async for data in stream:
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            lines.extend(line.decode(errors="replace") for line in complete)
            self._changed.unpark_all()
        if buffer:
            lines.append(buffer.decode(errors="replace"))
        self._changed.unpark_all()

    async def _wait_exit(self, readers_done: trio.Event) -> None:
        code = await self.process.wait()
        with trio.move_on_after(5):  # (a grandchild may hold the pipes open)
            await readers_done.wait()  # every line printed before the exit is in
        self.returncode = code
        self._changed.unpark_all()


def _command_for(target: str) -> list[str]:
    if target.endswith(".py"):
        return [sys.executable, target]
    if os.sep in target or (os.altsep is not None and os.altsep in target):
        return [target]
    return [sys.executable, "-m", target]


@asynccontextmanager
async def run_operator(
    program: str | os.PathLike[str],
    *args: str | os.PathLike[str],
    kubeconfig: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> AsyncIterator[OperatorProcess]:
    """Start `program *args` (a `.py` script, a module run with `-m`, or the path of an
    executable) with `--kubeconfig kubeconfig` when given (an envtest's
    `env.admin_kubeconfig`), this process's environment updated with `env` and
    `PYTHONUNBUFFERED=1`; yield it while it runs; kill it if it still runs when the block
    ends."""
    command = _command_for(os.fspath(program))
    command += [os.fspath(a) for a in args]
    if kubeconfig is not None:
        command += ["--kubeconfig", os.fspath(kubeconfig)]
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        cwd=Path(cwd) if cwd is not None else None,
    )
    operator = OperatorProcess(process, command)
    try:
        async with trio.open_nursery() as nursery:
            assert process.stdout is not None and process.stderr is not None
            readers_done = trio.Event()

            async def read_both() -> None:
                async with trio.open_nursery() as readers:
                    readers.start_soon(operator._read, process.stdout, operator.stdout)
                    readers.start_soon(operator._read, process.stderr, operator.stderr)
                readers_done.set()

            nursery.start_soon(read_both)
            nursery.start_soon(operator._wait_exit, readers_done)
            try:
                yield operator
            finally:
                if process.returncode is None:
                    process.kill()
                with trio.move_on_after(10):
                    await process.wait()
                    await readers_done.wait()
                nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
