"""haproxy's runtime API (its stats socket and master CLI), read the one way the whole bundle reads it.

One source for three readers on the proxies: the NRPE plugins and fedmsg-haproxy-sessions import it
from their own directory (this role installs it there); the `haproxy_stats` Ansible module imports it
as `ansible.module_utils.haproxy_cli` (ansible.cfg's `module_utils` names this directory, and Ansible
ships the file with the module); the tests and Molecule verifiers run it too. Python standard library
only: the module runs wherever Ansible runs modules, the plugins with Debian's python3.
"""

from __future__ import annotations

import csv
import socket
import time
from dataclasses import dataclass


class CliError(Exception):
    """haproxy's socket could not be read, or answered what this code cannot use."""


def query(path: str, command: str, deadline: float) -> str:
    """Send one command on a stats or master socket and read the answer until haproxy closes it.

    EOF marks the end of an answer however large it is. The write side is shut after the command:
    the stats socket closes after one answer anyway, the master socket only once the client has
    half-closed. Every wait gets what is left until DEADLINE (time.monotonic()), so a caller bounds
    all its queries at once. Not strict UTF-8: a failed health check puts the server's raw answer
    into last_chk.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(_remaining(deadline))
            sock.connect(path)
            sock.sendall(command.encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                sock.settimeout(_remaining(deadline))
    except FileNotFoundError:
        raise CliError(f"socket {path} does not exist (is haproxy running?)") from None
    except PermissionError:
        raise CliError(f"permission denied on socket {path}") from None
    except ConnectionRefusedError:
        raise CliError(f"connection refused on socket {path} (is haproxy running?)") from None
    except TimeoutError:
        raise CliError(f"no complete answer to '{command}' from {path} within the timeout") from None
    except OSError as exc:
        raise CliError(f"cannot query socket {path}: {exc.strerror or exc}") from None
    return b"".join(chunks).decode("utf-8", "replace")


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return remaining


def proxy_rows(stat_csv: str, proxy: str) -> dict[str, dict[str, str]]:
    """The `show stat` rows of one proxy by svname (FRONTEND, each server, BACKEND: haproxy's order)."""
    if not stat_csv.startswith("# pxname,"):
        raise CliError(f"unexpected answer to 'show stat': {stat_csv[:80].strip()!r}")
    rows = {row["svname"]: row for row in csv.DictReader(stat_csv[2:].splitlines()) if row["pxname"] == proxy}
    if not rows:
        raise CliError(f"proxy {proxy} not found in haproxy's stats")
    return rows


@dataclass(frozen=True)
class Worker:
    pid: int
    current: bool


def workers(master: str, deadline: float) -> list[Worker]:
    """The live workers from the master CLI's `show proc`: the current one first, then old ones."""
    answer = query(master, "show proc", deadline)
    found, section = [], None
    for line in answer.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").lower()
            continue
        fields = line.split()
        if section in ("workers", "old workers") and len(fields) > 1 and fields[1] == "worker":
            found.append(Worker(int(fields[0]), current=section == "workers"))
    current = [w for w in found if w.current]
    if len(current) != 1 or not answer.startswith("#<PID>"):
        raise CliError(f"unexpected answer to 'show proc' from {master}: {answer[:80].strip()!r}")
    return current + [w for w in found if not w.current]


def every_worker(master: str, commands: list[str], deadline: float) -> list[tuple[Worker, list[str]]]:
    """Each live worker's answers to the commands, through the master CLI (`@!<pid> COMMAND`).

    A reload leaves old workers serving their established sessions; only the master sees them all.
    """
    answers = []
    for worker in workers(master, deadline):
        replies = [query(master, f"@!{worker.pid} {command}", deadline) for command in commands]
        if not worker.current and any(reply.startswith("Can't find the target PID") for reply in replies):
            continue  # an old worker that exited since `show proc`: it holds no sessions any more
        answers.append((worker, replies))
    return answers
