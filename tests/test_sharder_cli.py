"""`trio-controller-sharder`'s command line: flags, and one error line for a broken set-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_controller.programs.sharder.cli import _namespace, _parser, main


def test_a_missing_kubeconfig_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--kubeconfig", str(tmp_path / "absent")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: kubeconfig {tmp_path / 'absent'}: file not found"]


@pytest.mark.parametrize(
    "argv", [["--settle", "-1"], ["--sync-period", "0"], ["--concurrent-moves", "0"]]
)
def test_impossible_numbers_are_refused_before_anything_starts(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "trio-controller-sharder: error: argument" in capsys.readouterr().err


def test_impossible_leader_election_timings_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "
        "'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: "
        "[{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    argv = ["--kubeconfig", str(kubeconfig), "--leader-elect-renew-deadline", "20"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: leader election: need lease_duration")


def test_defaults_are_the_original_sharders(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _parser().parse_args([])
    assert args.sync_period == 300.0
    assert args.concurrent_moves == 100
    assert args.leader_elect is True
    assert args.leader_elect_lease_duration == 15.0
    assert _parser().parse_args(["--no-leader-elect"]).leader_elect is False
    assert _namespace(_parser().parse_args(["-n", "ops"]), "ctx") == "ops"
    assert (
        _namespace(args, "ctx") in ("ctx",)
        or Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").exists()
    )


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["-A"], "-A/--all-namespaces: the sharder's Leases live in one namespace"),
        (["--controller-ring", "r"], "unrecognized arguments: --controller-ring"),
    ],
)
def test_the_sharder_is_no_shard_and_watches_one_lease_namespace(
    argv: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert why in capsys.readouterr().err


def test_the_managers_flags_serve_the_webhook_and_name_the_lease() -> None:
    args = _parser().parse_args(["--webhook-bind-address", ":9443", "--webhook-cert-dir", "/c"])
    assert (args.webhook_bind_address, args.webhook_cert_dir) == (":9443", "/c")
    assert args.leader_elect_resource_name == "trio-controller-sharder"
    assert args.graceful_shutdown_timeout == 30.0
    help_text = _parser().format_help()
    assert "--no-leader-elect" in help_text and "--controller-ring" not in help_text
    assert "--all-namespaces" not in help_text
