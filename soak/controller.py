"""One run of the `trio-controller` CLI as a child process: its lines as they come, its
exit code, and its RSS and open file descriptors sampled from /proc once a second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

SAMPLE_INTERVAL = 1.0


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


@dataclass
class ControllerRun:
    index: int
    argv: Sequence[str]
    stdout: list[str] = field(default_factory=list)
    stdout_times: list[float] = field(default_factory=list)  # Trio time each line came
    stderr: list[str] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # KiB, one a second
    fds: list[int] = field(default_factory=list)
    returncode: int | None = None
    process: trio.Process | None = None
    synced: trio.Event = field(default_factory=trio.Event)
    exited: trio.Event = field(default_factory=trio.Event)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def run(self, log_dir: Path, *, task_status: trio.TaskStatus[None]) -> None:
        """Start the process; `task_status.started()` once it runs; return when it exits."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = self.process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trio_controller", *self.argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None and process.stderr is not None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sample, process.pid)
                async with trio.open_nursery() as readers:
                    readers.start_soon(self._read, process.stdout, self.stdout, False)
                    readers.start_soon(self._read, process.stderr, self.stderr, True)
                    task_status.started()
                    self.returncode = await process.wait()
                # Exited, and every line it wrote has been read (the pipes are at EOF).
                self.exited.set()
                self.synced.set()  # nobody waits for a sync that cannot come
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._dump, log_dir)

    async def _read(self, stream: trio.abc.ReceiveStream, lines: list[str], err: bool) -> None:
        buffer = b""
        async for data in stream:
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if not err:
                    self.stdout_times.append(trio.current_time())
                if err and "Caches are synced" in line:
                    self.synced.set()
        if buffer:
            lines.append(buffer.decode("utf-8", "replace"))

    async def _sample(self, pid: int) -> None:
        while not self.exited.is_set():
            rss, fds = rss_kib(pid), open_fds(pid)
            if rss is None or fds is None:
                return
            self.rss.append(rss)
            self.fds.append(fds)
            await trio.sleep(SAMPLE_INTERVAL)

    def terminate(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)

    def _dump(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        timed = [
            f"{at:.3f} {line}" for at, line in zip(self.stdout_times, self.stdout, strict=False)
        ]
        (log_dir / f"controller-{self.index}.stdout").write_text("\n".join(timed) + "\n")
        (log_dir / f"controller-{self.index}.stderr").write_text("\n".join(self.stderr) + "\n")
