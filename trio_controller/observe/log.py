"""klog-style log lines on stderr: `I1127 21:40:00.123456   12345 file.py:42] message`."""

from __future__ import annotations

import logging
import os
import sys
import time

_LEVELS = {"DEBUG": "I", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}


class KlogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.localtime(record.created)
        micros = int((record.created % 1) * 1_000_000)
        head = (
            f"{_LEVELS.get(record.levelname, 'I')}{t.tm_mon:02d}{t.tm_mday:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{micros:06d} "
            f"{os.getpid():>7} {record.filename}:{record.lineno}] "
        )
        text = head + record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR and _show_tracebacks:
            text += "\n" + self.formatException(record.exc_info)
        return text


_show_tracebacks = False


def setup(verbosity: int) -> None:
    """Log to stderr like klog. `-v 4` and above adds debug lines and tracebacks."""
    global _show_tracebacks
    _show_tracebacks = verbosity >= 4
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KlogFormatter())
    root = logging.getLogger("trio_controller")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.DEBUG if verbosity >= 4 else logging.INFO)
