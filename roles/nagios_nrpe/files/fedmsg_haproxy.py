"""What the bundle's haproxy Nagios plugins share: haproxy's runtime API, thresholds, the status line.

Installed next to the plugins (Python imports from a script's own directory). Standard library plus
Debian's python3-nagiosplugin, for the plugin guidelines' range syntax, nothing else: NRPE hosts
have no PyPI and no Ansible module_utils.
"""

from __future__ import annotations

import argparse
import csv
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from nagiosplugin import Range

# The bundle's version (pyproject.toml); tests/haproxy checks they agree.
VERSION = "1.1.0"

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}

DEFAULT_SOCKET = "/run/haproxy/admin.sock"
DEFAULT_PROXY = "fedmsg-raw-zmq"


class CheckError(Exception):
    """A reason the check cannot judge; reported as UNKNOWN."""


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def state_of(value: float, warning: Range, critical: Range) -> int:
    """The guidelines' rule: alert when the value lies outside the range."""
    if value not in critical:
        return CRITICAL
    if value not in warning:
        return WARNING
    return OK


class Plugin:
    """The parts every plugin's command line has: -V, -t, exit 3 with one line on any failure."""

    def __init__(self, name: str, label: str, description: str) -> None:
        self.name, self.label = name, label
        self.parser = _Parser(self.unknown, prog=name, description=description)
        self.parser.add_argument("-V", "--version", action="version", version=f"{name} {VERSION}")
        self.parser.add_argument(
            "-t",
            "--timeout",
            type=positive_seconds,
            default=5.0,
            metavar="SECONDS",
            help="UNKNOWN when the whole check has not finished in this time (default 5)",
        )

    def unknown(self, reason: str) -> NoReturn:
        # Nagios reads stdout only; a traceback's exit 1 would show as WARNING with no text.
        print(f"{self.label} UNKNOWN - {reason}")
        sys.exit(UNKNOWN)

    def run(self, argv: list[str], check: Callable[[argparse.Namespace, float], tuple[int, str]]) -> int:
        args = self.parser.parse_args(argv)
        try:
            state, text = check(args, time.monotonic() + args.timeout)
        except CheckError as exc:
            self.unknown(str(exc))
        except Exception as exc:  # an unexpected answer or a bug: still one UNKNOWN line
            self.unknown(f"internal error: {exc!r}")
        print(f"{self.label} {STATE_NAMES[state]} - {text}")
        return state


class _Parser(argparse.ArgumentParser):
    def __init__(self, unknown: Callable[[str], NoReturn], **kwargs: str) -> None:
        super().__init__(**kwargs)
        self._unknown = unknown

    # argparse exits 2 on bad arguments, which NRPE would report as CRITICAL.
    def error(self, message: str) -> NoReturn:
        self._unknown(f"bad arguments: {message}")


def query(path: str, command: str, deadline: float) -> str:
    """Send one command on a stats or master socket and read the answer until haproxy closes it.

    EOF marks the end of an answer however large it is. The write side is shut after the command:
    the stats socket closes after one answer anyway, the master socket only once the client has
    half-closed. Every wait gets what is left until the deadline, so -t bounds the whole check.
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
        raise CheckError(f"socket {path} does not exist (is haproxy running?)") from None
    except PermissionError:
        raise CheckError(f"permission denied on socket {path}") from None
    except ConnectionRefusedError:
        raise CheckError(f"connection refused on socket {path} (is haproxy running?)") from None
    except TimeoutError:
        raise CheckError(f"no complete answer to '{command}' from {path} within the timeout") from None
    except OSError as exc:
        raise CheckError(f"cannot query socket {path}: {exc.strerror or exc}") from None
    return b"".join(chunks).decode("utf-8", "replace")


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return remaining


def proxy_rows(stat_csv: str, proxy: str) -> dict[str, dict[str, str]]:
    """The `show stat` rows of one proxy by svname (FRONTEND, BACKEND, each server)."""
    if not stat_csv.startswith("# pxname,"):
        raise CheckError(f"unexpected answer to 'show stat': {stat_csv[:80].strip()!r}")
    rows = {row["svname"]: row for row in csv.DictReader(stat_csv[2:].splitlines()) if row["pxname"] == proxy}
    if not rows:
        raise CheckError(f"proxy {proxy} not found in haproxy's stats")
    return rows


def info_fields(info: str) -> dict[str, str]:
    """`show info` as a dict; UNKNOWN unless it looks like haproxy's answer."""
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
    if fields.get("Name") != "HAProxy":
        raise CheckError(f"unexpected answer to 'show info': {info[:80].strip()!r}")
    return fields


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
        raise CheckError(f"unexpected answer to 'show proc' from {master}: {answer[:80].strip()!r}")
    return current + [w for w in found if not w.current]


def every_worker(master: str, commands: list[str], deadline: float) -> list[tuple[Worker, list[str]]]:
    """Each live worker's answers to the commands, through the master CLI (`@!<pid> COMMAND`)."""
    answers = []
    for worker in workers(master, deadline):
        replies = [query(master, f"@!{worker.pid} {command}", deadline) for command in commands]
        if not worker.current and any(reply.startswith("Can't find the target PID") for reply in replies):
            continue  # an old worker that exited since `show proc`: it holds no sessions any more
        answers.append((worker, replies))
    return answers


def frontend_sessions(stat_csv: str, proxy: str) -> tuple[int, int]:
    """Return (scur, slim) of the proxy's FRONTEND row in `show stat` output."""
    frontend = proxy_rows(stat_csv, proxy).get("FRONTEND")
    if frontend is None:
        raise CheckError(f"proxy {proxy} has no FRONTEND row: name a listen or frontend section")
    # A backend's slim is its fullconn, not a session limit, hence FRONTEND only.
    if not frontend["slim"] or int(frontend["slim"]) == 0:
        raise CheckError(f"proxy {proxy} reports no session limit (slim empty or 0): set its maxconn")
    return int(frontend["scur"]), int(frontend["slim"])


def global_sessions(info: str) -> tuple[int, int]:
    """Return (CurrConns, Maxconn) from `show info` output."""
    fields = info_fields(info)
    try:
        current, limit = int(fields["CurrConns"]), int(fields["Maxconn"])
    except (KeyError, ValueError):
        raise CheckError(f"unexpected answer to 'show info': {info[:80].strip()!r}") from None
    if limit == 0:
        raise CheckError("haproxy reports a global Maxconn of 0")
    return current, limit


@dataclass(frozen=True)
class Sessions:
    """Sessions summed over the workers that answered, against the current worker's limits."""

    proxies: dict[str, tuple[int, int]]  # proxy: (FRONTEND scur on every worker, the current slim)
    process: tuple[int, int]  # (CurrConns on every worker, the current Maxconn)
    old_workers: int


def count_sessions(answers: list[list[str]], proxies: list[str]) -> Sessions:
    """Sum each worker's [`show stat`, `show info`] answers, the current worker's first.

    maxconn is per worker: the limits new sessions meet are the current worker's; after a reload the
    sum can exceed them, and then that is true.
    """
    per_proxy = {proxy: [frontend_sessions(stat, proxy) for stat, _ in answers] for proxy in proxies}
    process = [global_sessions(info) for _, info in answers]
    return Sessions(
        proxies={proxy: (sum(s for s, _ in rows), rows[0][1]) for proxy, rows in per_proxy.items()},
        process=(sum(c for c, _ in process), process[0][1]),
        old_workers=len(answers) - 1,
    )


SESSION_COMMANDS = ["show stat", "show info"]


def sessions_on_every_worker(master: str, proxies: list[str], deadline: float) -> Sessions:
    """Sessions of the proxies and of the process, summed over every live worker (the master CLI)."""
    return count_sessions(
        [replies for _, replies in every_worker(master, SESSION_COMMANDS, deadline)], proxies
    )
