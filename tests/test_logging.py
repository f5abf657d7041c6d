"""Logging: klog's V levels, the JSON format, request lines at -v 6 without credentials,
the sync's progress and timeout lines, and `--version`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from streamserver import Reply, open_stream_server

from trio_controller import __version__
from trio_controller._native import Store
from trio_controller.auth import BearerTokenAuth
from trio_controller.config import ClusterConfig
from trio_controller.observe import log as klog
from trio_controller.programs.pods.cli import main
from trio_controller.runtime.controller import CacheSyncTimeout, Controller, ControllerOptions
from trio_controller.runtime.workqueue import WorkQueue
from trio_controller.transport.client import Client

SECRET = "s3cr3t-token-value"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`setup` configures the package logger; undo it after each test."""
    logger = logging.getLogger("trio_controller")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved
    klog.setup(0)
    logger.handlers[:], logger.propagate, logger.level = saved


def lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line]


def test_v_levels_sit_below_info_and_v4_is_debug() -> None:
    levels = [klog.v(n) for n in range(11)]
    assert levels[0] == logging.INFO
    assert levels[4] == logging.DEBUG
    assert levels == sorted(levels, reverse=True) and len(set(levels)) == 11
    assert all(level > 0 for level in levels)  # 0 would mean NOTSET: everything
    assert [klog.v_of(level) for level in levels] == list(range(11))


@pytest.mark.parametrize("verbosity", [0, 2, 4, 6])
def test_v_n_shows_every_v_level_up_to_n(
    verbosity: int, capsys: pytest.CaptureFixture[str]
) -> None:
    klog.setup(verbosity)
    log = logging.getLogger("trio_controller.test")
    for n in range(8):
        log.log(klog.v(n), "at V(%d)", n)
    log.debug("a debug line")
    shown = [line.rsplit("] ", 1)[1] for line in lines(capsys.readouterr().err)]
    expected = [f"at V({n})" for n in range(verbosity + 1)]
    assert shown == expected + (["a debug line"] if verbosity >= 4 else [])


def test_text_lines_keep_klogs_header(capsys: pytest.CaptureFixture[str]) -> None:
    klog.setup(0)
    logging.getLogger("trio_controller.test").warning("careful: %s", "x", extra={"k": 1})
    (line,) = lines(capsys.readouterr().err)
    head, message = line.split("] ", 1)
    assert head[0] == "W" and " test_logging.py:" in head
    assert message == "careful: x"  # fields are for the json format only


def test_json_lines_parse_with_ts_level_v_msg_fields_and_err(
    capsys: pytest.CaptureFixture[str],
) -> None:
    klog.setup(4, "json")
    log = logging.getLogger("trio_controller.test")
    log.info("Caches are synced (%d objects)", 3, extra={"objects": 3})
    log.log(klog.v(2), "Relisted")
    try:
        raise ValueError("bad value")
    except ValueError:
        log.error("Reconcile failed", exc_info=True, extra={"key": "default/a"})
    log.warning("odd", extra={"when": object()})  # not JSON-serialisable: shown as str
    entries = [orjson.loads(line) for line in lines(capsys.readouterr().err)]
    info, v2, error, warning = entries
    assert isinstance(info["ts"], float)
    assert info["level"] == "info" and info["v"] == 0
    assert info["msg"] == "Caches are synced (3 objects)" and info["objects"] == 3
    assert info["caller"].startswith("test_logging.py:")
    assert v2["v"] == 2 and v2["level"] == "info"
    assert error["level"] == "error" and "v" not in error
    assert error["err"] == "bad value" and error["key"] == "default/a"
    assert "ValueError: bad value" in error["stacktrace"]
    assert warning["level"] == "warning" and warning["when"].startswith("<object")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_error_with_an_exception_carries_its_traceback_at_the_default_verbosity(
    capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """A key dropped after its retries is logged at ERROR with its traceback (issue 9):
    the user's bug must be findable without -v 4. Warnings keep one line."""
    klog.setup(0, fmt)
    log = logging.getLogger("trio_controller.test")
    try:
        raise KeyError("missing")
    except KeyError as exc:
        log.warning("Error syncing widget default/a: KeyError: %s", exc, exc_info=True)
        log.error("Dropping widget 'default/a' out of the queue", exc_info=True)
    err = capsys.readouterr().err
    if fmt == "json":
        warning, error = (orjson.loads(line) for line in lines(err))
        assert "stacktrace" not in warning
        assert 'raise KeyError("missing")' in error["stacktrace"]
    else:
        warning_line, rest = err.split("\n", 1)
        assert warning_line.startswith("W") and "Traceback" not in warning_line
        assert rest.startswith("E") and "Traceback (most recent call last)" in rest
        assert 'raise KeyError("missing")' in rest


async def test_requests_are_logged_at_v6_with_method_path_and_status_never_credentials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Scripted server (fault injection: a 403 on cue)."""
    klog.setup(6)
    async with (
        open_stream_server(
            Reply(200, b'{"items":[]}'), Reply.failure(403, "Forbidden", "no")
        ) as server,
        Client(ClusterConfig(server=server.url, auth=BearerTokenAuth(SECRET))) as client,
    ):
        klog.log_requests(client)
        await client.list_page("/api/v1/pods", {"limit": "500"})
        with pytest.raises(Exception, match="no"):
            await client.list_page("/api/v1/pods")
    err = capsys.readouterr().err
    requests = [line.split("] ", 1)[1] for line in lines(err) if "milliseconds" in line]
    assert len(requests) == 2
    assert requests[0].startswith("GET /api/v1/pods 200 in ")
    assert requests[1].startswith("GET /api/v1/pods 403 in ")
    assert SECRET not in err and "Bearer" not in err and "limit=500" not in err


async def test_requests_are_not_logged_below_v6(capsys: pytest.CaptureFixture[str]) -> None:
    klog.setup(5)
    async with (
        open_stream_server(Reply(200, b"{}")) as server,
        Client(ClusterConfig(server=server.url)) as client,
    ):
        klog.log_requests(client)
        await client.list_page("/api/v1/pods")
    assert "milliseconds" not in capsys.readouterr().err


class SlowReflector:
    """Stands in for a reflector whose first list takes a while: 100 objects a second."""

    def __init__(self, sync_after: float) -> None:
        self.store = Store()
        self.synced = trio.Event()
        self.sync_after = sync_after
        self._started = 0.0

    def listed_so_far(self) -> int:
        return int((trio.current_time() - self._started) * 100)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._started = trio.current_time()
        task_status.started()
        await trio.sleep(self.sync_after)
        self.synced.set()
        await trio.sleep_forever()


async def test_a_long_sync_logs_its_progress_every_5_seconds_then_the_object_count(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_controller")
    controller = Controller.over(SlowReflector(12), WorkQueue(), lambda key: None)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        controller.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if m.startswith("Still syncing")] == [
        "Still syncing: 500 objects so far",
        "Still syncing: 1000 objects so far",
    ]
    assert "Caches are synced (0 objects)" in messages
    (synced,) = [r for r in caplog.records if r.getMessage().startswith("Caches are synced")]
    assert synced.objects == 0  # type: ignore[attr-defined]


async def test_a_sync_that_does_not_finish_in_time_raises_cache_sync_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controller = Controller.over(
        SlowReflector(1000),  # type: ignore[arg-type]
        WorkQueue(),
        lambda key: None,
        options=ControllerOptions(cache_sync_timeout=30),
    )
    with pytest.raises(CacheSyncTimeout, match=r"^timed out waiting for caches to sync after 30s$"):
        await controller.run()
    assert trio.current_time() == pytest.approx(30)


async def test_the_default_cache_sync_timeout_is_controller_runtimes_two_minutes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controller = Controller.over(SlowReflector(1000), WorkQueue(), lambda key: None)  # type: ignore[arg-type]
    with pytest.raises(CacheSyncTimeout, match="after 120s"):
        await controller.run()
    slow = Controller.over(
        SlowReflector(1000),  # type: ignore[arg-type]
        WorkQueue(),
        lambda key: None,
        options=ControllerOptions(cache_sync_timeout=None),
    )
    with trio.move_on_after(3600) as waited:
        await slow.run()  # no timeout: waits as long as it takes
    assert waited.cancelled_caught


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"trio-controller {__version__}\n"


def test_a_failure_with_json_logging_is_one_json_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--kubeconfig", str(tmp_path / "absent"), "--logging-format", "json"]) == 1
    (line,) = lines(capsys.readouterr().err)
    entry = orjson.loads(line)
    assert entry["level"] == "error"
    assert entry["msg"] == f"kubeconfig {tmp_path / 'absent'}: file not found"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--metrics-bind-address", "8080", "HOST:PORT"),
        ("--health-probe-bind-address", "host:port", "HOST:PORT"),
        ("--cache-sync-timeout", "-1", "0 or more"),
        ("--logging-format", "xml", "invalid choice"),
    ],
)
def test_bad_observability_flags_are_argument_errors(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([flag, value])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_servers_are_off_by_default_and_0_means_off() -> None:
    from trio_controller.programs.pods.cli import _parser

    assert _parser().parse_args(["--metrics-bind-address", "0"]).metrics_bind_address is None
    defaults = _parser().parse_args([])
    assert defaults.metrics_bind_address is None
    assert defaults.health_probe_bind_address is None
    assert defaults.cache_sync_timeout == 120
    assert defaults.logging_format == "text"
