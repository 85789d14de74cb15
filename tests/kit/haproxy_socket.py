"""The one reader of haproxy's stats socket and master CLI, for every test.

`query` is plain stdlib: the tests on this machine call it directly, and `kit.hosts` runs the same
function inside a container (its source is sent with the command, as the images have no socat).
"""

from __future__ import annotations

import csv
import io
import socket


def query(path: str, command: str, timeout: float = 5) -> str:
    """One command on a stats or master socket, its answer read to EOF.

    The write side is shut after the command: the master CLI answers only then. Not strict UTF-8: a
    failed health check puts the server's raw (binary) answer into last_chk.
    """
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


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
