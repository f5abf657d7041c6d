"""The floor under any Trio controller at low event rates: CPU per message of the bare
shape "socket readable -> recv -> wake a worker task -> write a line", with nothing
else (no TLS, no JSON, no cache), one 1.5 KB message every 0.5 ms from another process.

    .venv/bin/python bench/floor.py [--messages 3000]

At 100-1,000 events/s each event arrives alone, so every controller on Trio pays this
per event: an epoll wait and re-registration, two scheduler rounds (the reader's and
the worker's), a recv and a write. `inline` is the same with the line written by the
reader itself (one task, one scheduler round). Compare the CLI's CPU µs/event on the
real apiserver's churn (bench/e2e.py) with these numbers, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import time
from typing import TextIO

import trio


def _send(sock: socket.socket, messages: int) -> None:
    payload = b"x" * 1500
    for _ in range(messages):
        sock.send(payload)
        time.sleep(0.0005)
    sock.close()


async def _serve(sock: socket.socket, inline: bool, out: TextIO) -> None:
    lot = trio.lowlevel.ParkingLot()
    ready: list[int] = []
    buf = bytearray(256 * 1024)
    done = trio.Event()

    async def worker() -> None:
        while True:
            while not ready:
                await lot.park()
            ready.clear()
            out.write("Sync/Add/Update for Pod x\n")
            out.flush()

    async def reader() -> None:
        while True:
            await trio.lowlevel.wait_readable(sock)
            n = sock.recv_into(buf)
            if n == 0:
                done.set()
                return
            if inline:
                out.write("Sync/Add/Update for Pod x\n")
                out.flush()
            else:
                ready.append(n)
                lot.unpark()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        nursery.start_soon(reader)
        await done.wait()
        nursery.cancel_scope.cancel()


def measure(inline: bool, messages: int) -> tuple[float, float]:
    """(user, system) CPU µs per message of this process."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    pid = os.fork()
    if pid == 0:
        ours.close()
        _send(theirs, messages)
        os._exit(0)
    theirs.close()
    before = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.devnull, "w") as out:
        trio.run(_serve, ours, inline, out)
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(pid, 0)
    ours.close()
    user = (after.ru_utime - before.ru_utime) / messages * 1e6
    system = (after.ru_stime - before.ru_stime) / messages * 1e6
    return user, system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    for inline in (False, True, False, True):
        user, system = measure(inline, args.messages)
        shape = "reader + worker" if not inline else "reader only    "
        print(f"{shape}: {user + system:6.1f} µs CPU/message (user {user:.1f}, sys {system:.1f})")


if __name__ == "__main__":
    main()
