"""The CLI's failure surface without a server: one line, exit 1, tracebacks only on -v 4."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_controller.programs.pods.cli import main


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`main` sets up klog-style logging on the package logger; undo it after each test."""
    logger = logging.getLogger("trio_controller")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved


def test_a_missing_kubeconfig_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--kubeconfig", str(tmp_path / "absent")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"error: kubeconfig {tmp_path / 'absent'}: file not found"]


def test_verbosity_4_adds_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kubeconfig", str(tmp_path / "absent"), "-v", "4"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.rstrip().splitlines()[-1].startswith("error: kubeconfig")


def test_namespace_and_all_namespaces_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["-n", "a", "--all-namespaces"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_workers_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--workers", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_impossible_leader_election_timings_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    code = main(
        ["--kubeconfig", str(config), "--leader-elect", "--leader-elect-renew-deadline", "99"]
    )
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("error:")] == [
        "error: leader election: need lease_duration > renew_deadline > 1.2 * retry_period > 0 "
        "(client-go)"
    ]
