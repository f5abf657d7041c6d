"""`--cache-snapshot`: the store saved on exit and loaded on start, so deletes made
while the controller was down are reconciled by the first list.

A snapshot holds whole objects (a pod's env values included), so it is private: written
0600 through a temporary file created exclusively next to it (random name, no symlink
followed), fsynced, renamed over the target, and the directory fsynced. A snapshot path
that is a symbolic link is refused (on load and on save): following it would let whoever
planted it choose the file read or overwritten. On load, a file that is not the current
user's, or that others may write, is not trusted; neither is a corrupt one or one from
another format version. Each is ignored with one warning line, and the first list
rebuilds the cache.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Protocol

from trio_controller._native import Store
from trio_controller.errors import TrioControllerError

__all__ = ["check_snapshot_path", "load_snapshot", "save_snapshot"]

log = logging.getLogger(__name__)

# The format's magic line as the native Store writes it (`TCSNAP1\n` today): taken from
# an empty snapshot, so a format bump in Rust needs no change here.
_EMPTY = Store().snapshot()
MAGIC = _EMPTY[: _EMPTY.index(b"\n") + 1]
_FAMILY = MAGIC.rstrip(b"0123456789\n")  # b"TCSNAP": any version of the format


def _symlink_error(path: Path) -> TrioControllerError:
    return TrioControllerError(
        f"the cache snapshot {path} is a symbolic link; refusing to follow it "
        "(give the path of the file itself)"
    )


class Restorable(Protocol):
    """What a snapshot is loaded into: the informer that owns a cache (`Informer`)."""

    def restore(self, snapshot: bytes) -> int: ...


class Snapshottable(Protocol):
    """What a snapshot is taken of: a cache or a read-only view of one."""

    def snapshot(self) -> bytes: ...


def load_snapshot(store: Restorable, path: Path) -> int:
    """Fill a cache (through its informer: `Informer.restore`) from a cache snapshot;
    the first list then reconciles it.

    A missing file is an empty cache. A file that is unreadable, not a regular file, not
    owned by the current user, group- or world-writable, corrupt, truncated or of another
    format version is logged (one warning line saying why) and ignored: the list rebuilds
    the cache, only deletes made while the controller was down go unreported. A symbolic
    link is a `TrioControllerError`.
    """
    reason = None
    try:
        data = _read_trusted(path)
    except FileNotFoundError:
        return 0
    except _Untrusted as exc:
        data, reason = b"", str(exc)
    except OSError as exc:
        if exc.errno == errno.ELOOP and path.is_symlink():
            raise _symlink_error(path) from None
        data, reason = b"", f"cannot read it: {exc.strerror or exc}"
    if reason is None:
        try:
            return store.restore(data)
        except ValueError as exc:
            if data.startswith(_FAMILY) and not data.startswith(MAGIC):
                found = data[:16].split(b"\n")[0].decode("ascii", "replace")
                ours = MAGIC.strip().decode()
                reason = f"another snapshot format version ({found}; this version reads {ours})"
            else:
                reason = f"corrupt ({exc})"
    log.warning(
        "Ignoring the cache snapshot %s: %s; the first list rebuilds the cache", path, reason
    )
    return 0


class _Untrusted(Exception):
    pass


def _read_trusted(path: Path) -> bytes:
    # O_NOFOLLOW: a symlink is ELOOP. O_NONBLOCK: a FIFO planted at the path cannot
    # hang the open (it then fails the regular-file check).
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Untrusted("not a regular file")
        uid = os.geteuid()
        if st.st_uid != uid:
            raise _Untrusted(f"owned by uid {st.st_uid}, not by the current user (uid {uid})")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _Untrusted(
                f"group- or world-writable (mode {stat.S_IMODE(st.st_mode):04o}), "
                "so others could have changed it"
            )
        return f.read()


def _write_error(path: Path, exc: OSError) -> TrioControllerError:
    return TrioControllerError(f"cannot write the cache snapshot {path}: {exc.strerror or exc}")


def check_snapshot_path(path: Path) -> None:
    """Fail now, not after hours of running, if a snapshot cannot be saved at `path`:
    a symbolic link, or a directory where no file can be created."""
    if path.is_symlink():
        raise _symlink_error(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    os.unlink(tmp)


def save_snapshot(store: Snapshottable, path: Path) -> None:
    """Write the cache atomically and privately (mode 0600) at `path`.

    A symbolic link at `path` is refused (and left as it is); any other failure is one
    `TrioControllerError` line, and the previous snapshot, if any, stays whole.
    """
    if path.is_symlink():
        raise _symlink_error(path)
    data = store.snapshot()
    directory = path.parent
    try:
        # mkstemp: O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600, a random name.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # rename(2) replaces the directory entry; it never writes through a link that
        # appeared at `path` since the check above.
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _write_error(path, exc) from None
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable. Some file systems cannot fsync a directory: not an error."""
    try:
        dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    finally:
        os.close(dfd)
