"""Log lines on stderr, klog's text format or Kubernetes' JSON, with klog's V levels.

    I1127 21:40:00.123456   12345 file.py:42] message                    (--logging-format text)
    {"ts":1764276000.123456,"level":"info","v":0,"caller":"file.py:42","msg":"message"}  (json)

`setup(verbosity, fmt)` configures the `trio_controller` logger once, in the CLI.

V levels mean what klog's mean, and are ordinary logging levels below INFO, so any
logger can use them and `-v N` shows every V level up to N:

    from trio_controller.observe.log import v
    log.log(v(2), "Relisted %s: %d objects", path, n)      # relists, watch restarts, counts
    log.log(v(4), "List page of %s at resourceVersion %s", path, rv)  # pages, RVs, bookmarks
    if log.isEnabledFor(v(6)): ...                          # per request: method, path, status

`v(4)` is `logging.DEBUG`, so `log.debug` lines appear from `-v 4` on, as do tracebacks
of logged errors. `log_requests(client)` logs each request at V(6) with its method,
path (no query), status and milliseconds; headers and tokens are never logged.

Key-value fields go in `extra=`: the JSON format puts each one in the object, the text
format shows only the message (say the value in the message too):

    log.info("Caches are synced (%d objects)", n, extra={"objects": n})

An exception logged with `exc_info` at ERROR (a key dropped after its retries) carries
its traceback at every verbosity, under `stacktrace` in JSON, after the line in text;
below ERROR only from `-v 4`. The exception's message is under `err`.
`error_line(message)` is the CLI's last word in the chosen format.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, Literal

import orjson

if TYPE_CHECKING:
    from trio_controller.transport.client import Client

__all__ = ["Format", "JsonFormatter", "KlogFormatter", "error_line", "log_requests", "setup", "v"]

Format = Literal["text", "json"]

MAX_V = 10
_LEVELS = {"DEBUG": "I", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}


def _json_level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info"  # V levels too, with their `v`, as Kubernetes components log them


def v(level: int) -> int:
    """The logging level of klog's V(`level`): V(0) is INFO, V(4) is DEBUG, V(10) lowest.

    V(1)-V(3) are INFO-1 to INFO-3; V(4)-V(10) are DEBUG down to DEBUG-6.
    """
    level = max(0, min(level, MAX_V))
    if level == 0:
        return logging.INFO
    if level < 4:
        return logging.INFO - level
    return logging.DEBUG - (level - 4)


def v_of(levelno: int) -> int:
    """The V level a record's level stands for (0 for INFO and above)."""
    if levelno >= logging.INFO:
        return 0
    if levelno > logging.DEBUG:
        return min(3, logging.INFO - levelno)
    return min(MAX_V, 4 + logging.DEBUG - levelno)


class KlogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.localtime(record.created)
        micros = int((record.created % 1) * 1_000_000)
        level = _LEVELS.get(record.levelname, "I")
        head = (
            f"{level}{t.tm_mon:02d}{t.tm_mday:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{micros:06d} "
            f"{os.getpid():>7} {record.filename}:{record.lineno}] "
        )
        text = head + record.getMessage()
        if record.exc_info and (record.levelno >= logging.ERROR or _state.tracebacks):
            text += "\n" + self.formatException(record.exc_info)
        return text


# What a LogRecord holds before `extra=` adds to it: everything else is a field.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, v, caller, msg, the `extra=` fields, err."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {"ts": record.created, "level": _json_level(record.levelno)}
        if record.levelno < logging.WARNING:
            entry["v"] = v_of(record.levelno)
        entry["caller"] = f"{record.filename}:{record.lineno}"
        entry["msg"] = record.getMessage()
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["err"] = str(exc) or type(exc).__name__
            if record.levelno >= logging.ERROR or _state.tracebacks:
                entry["stacktrace"] = "".join(traceback.format_exception(exc))
        return orjson.dumps(entry, default=str).decode()


class _State:
    tracebacks = False
    format: Format = "text"


_state = _State()


def setup(verbosity: int, fmt: Format = "text") -> None:
    """Log to stderr. `-v N` shows V levels up to N; from 4 on, tracebacks too."""
    _state.tracebacks = verbosity >= 4
    _state.format = fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KlogFormatter())
    root = logging.getLogger("trio_controller")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(v(verbosity))


def error_line(message: str, exc: BaseException | None = None) -> str:
    """The CLI's final `error: ...` line, or a JSON error object in the json format."""
    if _state.format != "json":
        return f"error: {message}"
    entry: dict[str, object] = {"ts": time.time(), "level": "error", "msg": message}
    if exc is not None and _state.tracebacks:
        entry["stacktrace"] = "".join(traceback.format_exception(exc))
    return orjson.dumps(entry).decode()


_requests_log = logging.getLogger("trio_controller.transport.requests")


def _log_request(method: str, path: str, status: int | None, seconds: float) -> None:
    level = v(6)
    if _requests_log.isEnabledFor(level):
        ms = round(seconds * 1000)
        shown = "<error>" if status is None else status
        _requests_log.log(
            level,
            "%s %s %s in %d milliseconds",
            method,
            path,
            shown,
            ms,
            extra={"verb": method, "path": path, "status": shown, "milliseconds": ms},
        )


def log_requests(client: Client) -> None:
    """Log every request and watch opening of `client` at V(6), as client-go does."""
    client.add_request_hook(_log_request)
