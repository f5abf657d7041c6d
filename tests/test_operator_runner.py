"""`trio_controller.testing.run_operator`: a program run as a child process, its output
read line by line, waited on, stopped with SIGTERM. The programs here are small scripts
(the runner's subject is the process, not Kubernetes; tests/e2e/test_quota_operator_e2e.py
runs a real operator with it against a real apiserver)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trio_controller.testing import run_operator

PROGRAM = """\
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print("stopping", file=sys.stderr), sys.exit(0)))
print("args", *sys.argv[1:])
for i in range(3):
    print(f"Set quota of team-{i % 2}")
print("half a line", end="")
sys.stdout.flush()
# Last: a test that waited for this line has all of stdout (PYTHONUNBUFFERED or not).
print("Caches are synced (0 objects)", file=sys.stderr, flush=True)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "operator.py"
    path.write_text(PROGRAM)
    return path


async def test_the_program_runs_with_its_args_and_the_kubeconfig_flag(program: Path) -> None:
    async with run_operator(program, "-v", "2", kubeconfig="/tmp/kc") as op:
        await op.wait_for_stdout("args -v 2 --kubeconfig /tmp/kc")
        assert op.command == [sys.executable, str(program), "-v", "2", "--kubeconfig", "/tmp/kc"]


async def test_lines_are_waited_for_and_counted_and_sigterm_gives_the_exit_code(
    program: Path,
) -> None:
    async with run_operator(program) as op:
        line = await op.wait_for_stderr("Caches are synced")
        assert line == "Caches are synced (0 objects)"
        await op.wait_for_stdout("Set quota of team-0", count=2)
        assert op.stdout.count("Set quota of team-1") == 1
        assert op.returncode is None
        assert await op.terminate() == 0
    assert op.stderr[-1] == "stopping"
    assert op.stdout[-1] == "half a line"  # the last line without a newline too


async def test_a_program_that_exits_first_fails_the_wait_with_its_output(tmp_path: Path) -> None:
    crash = tmp_path / "crash.py"
    crash.write_text('import sys\nprint("error: no kubeconfig", file=sys.stderr)\nsys.exit(1)\n')
    async with run_operator(crash) as op:
        with pytest.raises(AssertionError, match="exited 1 before 'Set quota of a'") as caught:
            await op.wait_for_stdout("Set quota of a")
        assert "error: no kubeconfig" in str(caught.value)
        assert await op.wait() == 1


async def test_a_wait_that_times_out_says_what_it_waited_for(program: Path) -> None:
    async with run_operator(program) as op:
        with pytest.raises(AssertionError, match=r"timed out after 0.2s waiting for 'never'"):
            await op.wait_for_stderr("never", within=0.2)


async def test_a_module_is_run_with_dash_m_and_env_is_passed(tmp_path: Path) -> None:
    (tmp_path / "myop.py").write_text("import os\nprint(os.environ['QUOTA'])\n")
    async with run_operator("myop", env={"QUOTA": "10", "PYTHONPATH": str(tmp_path)}) as op:
        assert await op.wait() == 0
        assert op.stdout == ["10"]
        assert op.command[1:3] == ["-m", "myop"]


async def test_a_program_still_running_at_the_end_of_the_block_is_killed(program: Path) -> None:
    async with run_operator(program) as op:
        await op.wait_for_stdout("Set quota of team-1")
        process = op.process
    assert process.returncode is not None and process.returncode < 0


async def test_a_path_that_is_not_a_script_is_run_as_an_executable(tmp_path: Path) -> None:
    executable = tmp_path / "sharder"
    script = "import sys\nprint('console script', *sys.argv[1:])\n"
    executable.write_text(f"#!{sys.executable}\n{script}")
    executable.chmod(0o755)
    async with run_operator(executable, "--namespace", "sharding") as op:
        assert await op.wait() == 0
        assert op.command == [str(executable), "--namespace", "sharding"]
        assert op.stdout == ["console script --namespace sharding"]
