"""haproxy's stats socket and master CLI, for every test: the bundle's reader, and parsers of the answers.

`query` is haproxy_cli's, the one reader the NRPE plugins and library/haproxy_stats use (stdlib only;
roles/nagios_nrpe/files/ is on pytest's pythonpath), tested against a real haproxy by tests/haproxy.
`kit.hosts` runs the same module inside a container (its source is sent with the command, as the
images have no socat).
"""

from __future__ import annotations

import csv
import io
import time

import haproxy_cli
from haproxy_cli import CliError

__all__ = ["CliError", "query", "servers", "stat_rows", "workers"]


def query(path: str, command: str, timeout: float = 5) -> str:
    """One command on a stats or master socket, its whole answer (read to EOF within TIMEOUT seconds).

    CliError when the socket cannot be read. Not strict UTF-8: a failed health check puts the
    server's raw (binary) answer into last_chk.
    """
    return haproxy_cli.query(path, command, time.monotonic() + timeout)


def stat_rows(show_stat: str) -> list[dict[str, str]]:
    """The rows of a `show stat` answer (CSV after "# ")."""
    return list(csv.DictReader(io.StringIO(show_stat.removeprefix("# "))))


def servers(rows: list[dict[str, str]], proxy: str) -> dict[str, dict[str, str]]:
    """The server rows of one proxy by name (FRONTEND and BACKEND left out)."""
    return {
        row["svname"]: row
        for row in rows
        if row["pxname"] == proxy and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def workers(show_proc: str) -> list[int]:
    """Worker pids of the master CLI's `show proc`: the current one first, then the old ones."""
    lines = show_proc.splitlines()
    return [int(line.split()[0]) for line in lines if not line.startswith("#") and " worker " in f" {line} "]
