"""`--cache-snapshot` files: private (0600), written through an exclusive temporary file,
never through a symlink; untrusted, corrupt or foreign ones are ignored with one warning."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from trio_controller._native import Store
from trio_controller.cache import snapshot as snapshot_module
from trio_controller.cache.snapshot import check_snapshot_path, load_snapshot, save_snapshot
from trio_controller.errors import TrioControllerError
from trio_controller.programs.pods.cli import main

SECRET_ENV = "hunter2-env-value"
NOBODY = 65534


def pod(name: str) -> bytes:
    meta = {"name": name, "namespace": "default", "uid": name, "resourceVersion": "1"}
    env = [{"name": "PASSWORD", "value": SECRET_ENV}]
    return orjson.dumps({"kind": "Pod", "metadata": meta, "spec": {"containers": [{"env": env}]}})


def filled(*names: str) -> Store:
    store = Store()
    for name in names:
        store.upsert(pod(name))
    store.resource_version = "7"
    return store


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`main` sets up klog-style logging on the package logger; undo it after each test."""
    logger = logging.getLogger("trio_controller")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def only_warning(caplog: pytest.LogCaptureFixture) -> str:
    """The one warning logged, checked to be a single line without a traceback."""
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    (record,) = records
    assert record.exc_info is None
    message = record.getMessage()
    assert "\n" not in message
    assert "Ignoring the cache snapshot" in message
    return message


def ignored(path: Path, caplog: pytest.LogCaptureFixture) -> str:
    """Load `path` into an empty store: nothing restored, one warning; its text."""
    store = Store()
    with caplog.at_level(logging.WARNING, logger="trio_controller"):
        assert load_snapshot(store, path) == 0
    assert store.list_keys() == []
    assert store.resource_version is None
    return only_warning(caplog)


# -- round trip ----------------------------------------------------------------------------


def test_a_snapshot_round_trip_keeps_every_object(tmp_path: Path) -> None:
    save_snapshot(filled("a", "b"), tmp_path / "cache")
    again = Store()
    assert load_snapshot(again, tmp_path / "cache") == 2
    assert sorted(again.list_keys()) == ["default/a", "default/b"]
    assert again.resource_version == "7"


def test_a_missing_snapshot_is_an_empty_cache_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="trio_controller"):
        assert load_snapshot(Store(), tmp_path / "missing") == 0
    assert caplog.records == []


# -- writing -------------------------------------------------------------------------------


def test_a_new_snapshot_is_0600_under_umask_022(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "cache"
    save_snapshot(filled("a"), path)
    assert mode(path) == 0o600
    assert path.stat().st_uid == os.geteuid()


def test_a_0600_snapshot_stays_0600_and_a_0644_one_becomes_0600(
    tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "cache"
    save_snapshot(filled("a"), path)
    save_snapshot(filled("a", "b"), path)
    assert mode(path) == 0o600
    path.chmod(0o644)
    save_snapshot(filled("a"), path)
    assert mode(path) == 0o600


def test_saving_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    save_snapshot(filled("a"), tmp_path / "cache")
    save_snapshot(filled("b"), tmp_path / "cache")
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(
    tmp_path: Path, umask_022: None
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    victim.chmod(0o644)
    path = tmp_path / "cache"
    planted = tmp_path / "cache.tmp"
    planted.symlink_to(victim)
    save_snapshot(filled("a"), path)
    assert victim.read_bytes() == b"precious"
    assert mode(victim) == 0o644
    assert planted.is_symlink() and planted.readlink() == victim
    assert load_snapshot(Store(), path) == 1


def test_the_temporary_file_is_created_exclusively_with_a_random_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, *args: int, **kw: int) -> int:
        if Path(path).parent == tmp_path:
            seen.append((Path(path).name, flags))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", spy)
    save_snapshot(filled("a"), tmp_path / "cache")
    save_snapshot(filled("a"), tmp_path / "cache")
    created = [(name, flags) for name, flags in seen if flags & os.O_CREAT]
    assert len(created) == 2
    for name, flags in created:
        assert flags & os.O_EXCL and flags & os.O_NOFOLLOW, name
        assert name.startswith(".cache.") and name.endswith(".tmp")
    assert created[0][0] != created[1][0]


def test_a_symlink_at_the_snapshot_path_is_refused_and_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    path = tmp_path / "cache"
    path.symlink_to(victim)
    with pytest.raises(TrioControllerError, match="is a symbolic link") as saving:
        save_snapshot(filled("a"), path)
    with pytest.raises(TrioControllerError, match="is a symbolic link"):
        load_snapshot(Store(), path)
    with pytest.raises(TrioControllerError, match="is a symbolic link"):
        check_snapshot_path(path)
    assert "\n" not in str(saving.value)
    assert victim.read_bytes() == b"precious"
    assert path.is_symlink() and path.readlink() == victim
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "victim"]


def test_a_dangling_symlink_at_the_snapshot_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    path.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(TrioControllerError, match="is a symbolic link"):
        load_snapshot(Store(), path)
    with pytest.raises(TrioControllerError, match="is a symbolic link"):
        save_snapshot(filled("a"), path)
    assert not (tmp_path / "would-be-created").exists()


@contextlib.contextmanager
def effective_uid(uid: int) -> Iterator[None]:
    """Run as `uid` for permission checks (root only: root ignores file modes)."""
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder others can enter (pytest's tmp_path is 0700 and root's)."""
    folder = Path(tempfile.mkdtemp(prefix="snapshot-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for p in folder.iterdir():
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(folder)


def test_unwritable_places_are_one_clear_error(tmp_path: Path, shared_tmp: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    read_only = shared_tmp / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    cases = [tmp_path / "no-such-dir" / "cache", tmp_path / "a-file" / "cache"]
    for path in cases:
        with pytest.raises(TrioControllerError, match="cannot write the cache snapshot") as e:
            save_snapshot(filled("a"), path)
        assert str(e.value) == f"cannot write the cache snapshot {path}: " + (
            "No such file or directory" if "no-such-dir" in str(path) else "Not a directory"
        )
        with pytest.raises(TrioControllerError, match="cannot write the cache snapshot"):
            check_snapshot_path(path)
    target = read_only / "cache"
    as_other = effective_uid(NOBODY) if os.geteuid() == 0 else contextlib.nullcontext()
    with as_other:
        with pytest.raises(TrioControllerError) as e:
            save_snapshot(filled("a"), target)
        assert str(e.value) == f"cannot write the cache snapshot {target}: Permission denied"
        with pytest.raises(TrioControllerError, match="Permission denied"):
            check_snapshot_path(target)
    assert list(read_only.iterdir()) == []


def test_a_failed_rename_keeps_what_was_there_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    path.mkdir()
    (path / "inside").write_bytes(b"kept")
    with pytest.raises(TrioControllerError, match="cannot write the cache snapshot"):
        save_snapshot(filled("a"), path)
    assert (path / "inside").read_bytes() == b"kept"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


# -- loading what cannot be trusted --------------------------------------------------------


def test_a_corrupt_snapshot_is_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache"
    path.write_bytes(b"\x00not a snapshot")
    path.chmod(0o600)
    assert "corrupt" in ignored(path, caplog)


def test_a_truncated_snapshot_is_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache"
    save_snapshot(filled("a", "b"), path)
    path.write_bytes(path.read_bytes()[:-5])
    message = ignored(path, caplog)
    assert "corrupt" in message and "truncated" in message


def test_a_snapshot_of_another_format_version_is_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache"
    save_snapshot(filled("a"), path)
    data = path.read_bytes()
    assert data.startswith(snapshot_module.MAGIC) and snapshot_module.MAGIC == b"TCSNAP1\n"
    path.write_bytes(b"TCSNAP9\n" + data[len(snapshot_module.MAGIC) :])
    message = ignored(path, caplog)
    assert "another snapshot format version (TCSNAP9; this version reads TCSNAP1)" in message


def test_a_snapshot_owned_by_someone_else_is_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache"
    save_snapshot(filled("a"), path)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)  # a real file of another user
    else:
        me = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    message = ignored(path, caplog)
    assert "not by the current user" in message


@pytest.mark.parametrize("bits", [0o620, 0o602, 0o666], ids=["group", "world", "both"])
def test_a_snapshot_others_can_write_is_ignored_with_one_warning(
    bits: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache"
    save_snapshot(filled("a"), path)
    path.chmod(bits)
    message = ignored(path, caplog)
    assert "group- or world-writable" in message and f"{bits:04o}" in message


def test_a_readable_0644_snapshot_of_ours_is_still_loaded(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    save_snapshot(filled("a"), path)
    path.chmod(0o644)  # readable by others is a privacy problem, not a trust problem
    assert load_snapshot(Store(), path) == 1


def test_a_fifo_at_the_snapshot_path_does_not_hang_the_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache"
    os.mkfifo(path, 0o600)
    rescued = threading.Event()

    def rescue() -> None:  # if the load blocks on the FIFO, a writer unblocks it (and fails)
        if not done.wait(5):
            rescued.set()
            with open(path, "wb"):
                pass

    done = threading.Event()
    rescuer = threading.Thread(target=rescue, daemon=True)
    rescuer.start()
    try:
        message = ignored(path, caplog)
    finally:
        done.set()
        rescuer.join()
    assert not rescued.is_set(), "the load blocked on a FIFO"
    assert "not a regular file" in message


def test_an_unreadable_snapshot_is_ignored_with_one_warning(
    shared_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = shared_tmp / "cache"
    save_snapshot(filled("a"), path)
    path.chmod(0o000)
    as_other = effective_uid(NOBODY) if os.geteuid() == 0 else contextlib.nullcontext()
    with as_other:
        message = ignored(path, caplog)
    assert "cannot read it: Permission denied" in message


# -- through the CLI -----------------------------------------------------------------------


def kubeconfig(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c}}]\n"
    )
    return config


@pytest.mark.parametrize("case", ["missing-dir", "symlink"])
def test_the_cli_refuses_an_unusable_snapshot_path_before_it_connects(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if case == "missing-dir":
        path, expected = tmp_path / "absent" / "cache", "cannot write the cache snapshot"
    else:
        path, expected = tmp_path / "cache", "is a symbolic link"
        path.symlink_to(tmp_path / "elsewhere")
    argv = ["--kubeconfig", str(kubeconfig(tmp_path)), "--cache-snapshot", str(path)]
    assert main([*argv, "-v", "10"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], err
    assert "connection" not in err.lower() and "refused" not in err.lower()
