"""Issue 17's start-up targets: whole-process wall time of imports and `--version`.

    .venv/bin/python bench/import_bench.py [--rounds 21] [--python PATH]

Runs each command below once per round, interleaved, each as a fresh process from
`Popen` to exit, and prints the medians (and min-max) of wall time and of CPU time (user +
system, from `wait4`: less sensitive to the other load on a shared machine). `--python`
measures another interpreter (a venv without click/rich, where httpx skips importing its
CLI); the commands then run there. The package's bytecode is compiled first, as pip does
for an installed wheel (this machine sets PYTHONDONTWRITEBYTECODE=1, and a source checkout
would otherwise compile every module on every start).

trio       python -c "import trio"                       (the reference)
names      python -c "import trio; from trio_controller import Manager, Controller,
           Client, Api, load_config"                     (target: ≤ trio + 60 ms)
package    python -c "import trio_controller"
version    python -m trio_controller.programs.pods.cli --version   (target: ≤ 0.25 s)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

NAMES = "from trio_controller import Manager, Controller, Client, Api, load_config"


def commands(py: str) -> dict[str, list[str]]:
    return {
        "trio": [py, "-c", "import trio"],
        "names": [py, "-c", f"import trio; {NAMES}"],
        "package": [py, "-c", "import trio_controller"],
        "version": [py, "-m", "trio_controller.programs.pods.cli", "--version"],
    }


def run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{argv} exited {proc.returncode}")
    return took, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    argvs = commands(args.python)
    package = subprocess.run(
        [args.python, "-c", "import trio_controller; print(trio_controller.__path__[0])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        [args.python, "-m", "compileall", "-q", package], check=True, stdout=subprocess.DEVNULL
    )
    for argv in argvs.values():  # warm the page cache and .pyc files
        run(argv)
    walls: dict[str, list[float]] = {name: [] for name in argvs}
    cpus: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(args.rounds):
        for name, argv in argvs.items():
            took, cpu = run(argv)
            walls[name].append(took)
            cpus[name].append(cpu)
    print(f"python: {args.python}, {args.rounds} rounds, interleaved; {uptime()}")
    print("| command | wall median ms | wall range ms | - trio | CPU median ms | - trio |")
    print("|---|---:|---:|---:|---:|---:|")
    wall_ref, cpu_ref = statistics.median(walls["trio"]), statistics.median(cpus["trio"])
    for name, w in walls.items():
        wall_med, cpu_med = statistics.median(w), statistics.median(cpus[name])
        extra = name != "trio"
        print(
            f"| {name} | {wall_med * 1e3:.0f} | {min(w) * 1e3:.0f}-{max(w) * 1e3:.0f} "
            f"| {f'{(wall_med - wall_ref) * 1e3:+.0f}' if extra else ''} "
            f"| {cpu_med * 1e3:.0f} | {f'{(cpu_med - cpu_ref) * 1e3:+.0f}' if extra else ''} |"
        )


def uptime() -> str:
    with open("/proc/loadavg") as f:
        return "load average " + " ".join(f.read().split()[:3])


if __name__ == "__main__":
    main()
