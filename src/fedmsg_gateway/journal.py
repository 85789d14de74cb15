"""Logging to stderr, with the journal's priorities when stderr is the journal.

systemd reads a `<N>` prefix on every line a service writes to its journal stream as that line's
syslog priority (SyslogLevelPrefix=, on by default): journald stores it as the entry's PRIORITY. It tells a
service its stderr is that stream with $JOURNAL_STREAM ("DEVICE:INODE" of the stream): only then are
the prefixes written. Anywhere else (a terminal, a test, a pipe) the lines read `LEVEL message`.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

#: logging's levels as syslog priorities (sd-daemon(3): <2> crit, <3> err, <4> warning, <6> info, <7> debug).
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_DEBUG = 7


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (levels between two take the less severe one)."""
    for level, value in _PRIORITIES:
        if levelno >= level:
            return value
    return _DEBUG


class JournalFormatter(logging.Formatter):
    """`<N>message`, the prefix on every line: a traceback's lines keep its record's priority."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def is_journal_stream(stream: TextIO) -> bool:
    """True when `stream` is the journal stream systemd named in $JOURNAL_STREAM (systemd.exec(5))."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(stream.fileno())
        return (status.st_dev, status.st_ino) == (int(device), int(inode))
    except (ValueError, OSError):
        return False


def setup_logging(level: int = logging.INFO, stream: TextIO = sys.stderr) -> None:
    """Log to `stream` (stderr): journal priorities when it is the journal, `LEVEL message` elsewhere."""
    handler = logging.StreamHandler(stream)
    if is_journal_stream(stream):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
