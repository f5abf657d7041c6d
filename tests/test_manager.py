"""The Manager's flags, set-up and exits, without a server."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_controller import Manager, TrioControllerError, load_config
from trio_controller.programs.pods.cli import _parser as pod_parser
from trio_controller.runtime.flags import add_flags
from trio_controller.runtime.manager import setup_logging
from trio_controller.transport.client import Client

KUBECONFIG = (
    "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
    "users: [{name: u, user: {token: t}}]\n"
    "contexts: [{name: c, context: {cluster: c, user: u, namespace: from-context}}]\n"
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    loggers = [logging.getLogger("trio_controller"), logging.getLogger("httpx")]
    saved = [(lg.handlers[:], lg.propagate, lg.level) for lg in loggers]
    yield
    for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        lg.handlers[:], lg.propagate, lg.level = handlers, propagate, level


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    return path


def standard(argv: list[str], **kw: str) -> argparse.Namespace:
    return add_flags(argparse.ArgumentParser(prog="op"), **kw).parse_args(argv)


def options(parser: argparse.ArgumentParser) -> dict[str, object]:
    """Every option string with its default, from a parser."""
    return {
        opt: action.default
        for action in parser._actions
        for opt in action.option_strings
        if opt not in ("-h", "--help", "--version")
    }


def test_the_standard_flags_are_the_pod_programs_spelling_and_defaults() -> None:
    ours = options(add_flags(argparse.ArgumentParser(), leader_elect_resource_name="x"))
    pods = options(pod_parser())
    own = {"--resync", "--cache-snapshot", "--compress-cache", "--no-compress-cache",
           "--streaming-list", "--no-streaming-list"}  # fmt: skip
    assert set(pods) - own == set(ours)
    for opt, default in ours.items():
        if opt != "--leader-elect-resource-name":
            assert pods[opt] == default, opt
    assert ours["--graceful-shutdown-timeout"] == 30.0  # controller-runtime's
    assert ours["--cache-sync-timeout"] == 120.0


def test_from_args_takes_the_namespace_rule_and_the_lease_settings(kubeconfig: Path) -> None:
    config = load_config(str(kubeconfig))
    client = Client(config)
    args = standard(["--leader-elect", "--leader-elect-retry-period", "1",
                     "--graceful-shutdown-timeout", "-1", "--workers", "3"])  # fmt: skip
    manager = Manager.from_args(client, args, config)
    assert manager.namespace == "from-context" and manager.workers == 3
    assert manager.graceful_shutdown_timeout is None  # negative: wait forever
    assert manager.elector is not None
    assert (manager.elector.namespace, manager.elector.name) == ("from-context", "trio-controller")
    assert manager.elector.retry_period == 1.0
    every = Manager.from_args(client, standard(["-A"]), config)
    assert every.namespace is None and every.elector is None
    assert every.cache_sync_timeout == 120.0
    forever = Manager.from_args(client, standard(["--cache-sync-timeout", "0"]), config)
    assert forever.cache_sync_timeout is None


def test_impossible_lease_timings_are_a_set_up_error(kubeconfig: Path) -> None:
    client = Client(load_config(str(kubeconfig)))
    args = standard(["--leader-elect", "--leader-elect-renew-deadline", "99"])
    with pytest.raises(TrioControllerError, match=r"^leader election: need lease_duration"):
        Manager.from_args(client, args)


def test_main_turns_a_broken_set_up_into_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def setup(manager: Manager) -> None:
        raise AssertionError("not reached: the kubeconfig is missing")

    code = Manager.main(setup, argv=["--kubeconfig", str(tmp_path / "absent")], prog="op")
    assert code == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"error: kubeconfig {tmp_path / 'absent'}: file not found"]


def test_a_failing_setup_is_one_line_and_a_programs_own_flags_reach_it(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="op")
    parser.add_argument("--color", default="blue")
    seen: list[str] = []

    async def setup(manager: Manager) -> None:
        assert manager.args is not None
        seen.append(manager.args.color)
        raise TrioControllerError("the CRD is missing")

    argv = ["--kubeconfig", str(kubeconfig), "--color", "red", "-n", "ns"]
    assert Manager.main(setup, argv=argv, parser=parser) == 1
    assert seen == ["red"]
    assert capsys.readouterr().err.splitlines() == ["error: the CRD is missing"]


def test_an_unexpected_error_names_its_type_and_shows_a_traceback_only_at_v4(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def setup(manager: Manager) -> None:
        raise KeyError("boom")

    assert Manager.main(setup, argv=["--kubeconfig", str(kubeconfig)], prog="op") == 1
    assert capsys.readouterr().err.splitlines() == ["error: unexpected KeyError: 'boom'"]
    argv = ["--kubeconfig", str(kubeconfig), "-v", "4"]
    assert Manager.main(setup, argv=argv, prog="op") == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1] == "error: unexpected KeyError: 'boom'"


def test_version_is_the_programs_name_and_the_librarys_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trio_controller import __version__

    with pytest.raises(SystemExit) as exit_:
        Manager.main(lambda m: None, argv=["--version"], prog="widget-operator")  # type: ignore[arg-type, return-value]
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"widget-operator {__version__}"


def test_httpx_request_lines_show_only_from_v6() -> None:
    setup_logging(0)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    setup_logging(6)
    httpx_log = logging.getLogger("httpx")
    assert httpx_log.isEnabledFor(logging.INFO) and not httpx_log.propagate
    assert httpx_log.handlers == logging.getLogger("trio_controller").handlers


def test_the_widget_example_takes_the_managers_flags() -> None:
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "widget_operator.py"
    done = subprocess.run(
        [sys.executable, str(example), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--kubeconfig", "--context", "--master", "--namespace", "--all-namespaces",
                 "--workers", "--logging-format", "--metrics-bind-address",
                 "--health-probe-bind-address", "--leader-elect-resource-namespace",
                 "--leader-elect-retry-period", "--cache-sync-timeout",
                 "--graceful-shutdown-timeout", "--version", "--ledger"):  # fmt: skip
        assert flag in done.stdout, flag
    assert "(default widget-operator)" in done.stdout  # the Lease's default name
