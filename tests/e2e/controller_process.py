"""Runs the `trio-controller` CLI as a child process and reads its output as it comes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio


class ControllerProcess:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = trio.lowlevel.ParkingLot()
        self.returncode: int | None = None

    async def _read(self, stream: trio.abc.ReceiveStream, lines: list[str]) -> None:
        buffer = b""
        async for data in stream:
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            lines.extend(line.decode() for line in complete)
            self._changed.unpark_all()
        if buffer:
            lines.append(buffer.decode())
        self._changed.unpark_all()

    async def _wait_exit(self) -> None:
        self.returncode = await self.process.wait()
        self._changed.unpark_all()

    async def wait_stdout(self, line: str, count: int = 1, within: float = 30.0) -> None:
        """Until `line` was printed `count` times."""
        with trio.fail_after(within):
            while self.stdout.count(line) < count:
                if self.returncode is not None:
                    raise AssertionError(f"exited {self.returncode} before {line!r}: {self}")
                await self._changed.park()

    async def wait_stderr(self, fragment: str, within: float = 30.0) -> None:
        with trio.fail_after(within):
            while not any(fragment in line for line in self.stderr):
                if self.returncode is not None:
                    raise AssertionError(f"exited {self.returncode} before {fragment!r}: {self}")
                await self._changed.park()

    async def wait(self, within: float = 30.0) -> int:
        with trio.fail_after(within):
            while self.returncode is None:
                await self._changed.park()
        return self.returncode

    async def terminate(self, within: float = 15.0) -> int:
        """SIGTERM, then the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await self.wait(within)

    def __str__(self) -> str:
        return "\nstdout:\n" + "\n".join(self.stdout) + "\nstderr:\n" + "\n".join(self.stderr)


@asynccontextmanager
async def run_controller(
    *args: str | Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> AsyncIterator[ControllerProcess]:
    """`trio-controller *args` in the background; killed if still running at the end."""
    command: Sequence[str] = [sys.executable, "-m", "trio_controller", *map(str, args)]
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    proc = ControllerProcess(process)
    async with trio.open_nursery() as nursery:
        assert process.stdout is not None and process.stderr is not None
        nursery.start_soon(proc._read, process.stdout, proc.stdout)
        nursery.start_soon(proc._read, process.stderr, proc.stderr)
        nursery.start_soon(proc._wait_exit)
        try:
            yield proc
        finally:
            if process.returncode is None:
                process.kill()
            with trio.move_on_after(10):
                await process.wait()
