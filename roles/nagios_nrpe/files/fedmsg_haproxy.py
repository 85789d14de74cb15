"""What the bundle's haproxy Nagios plugins share: thresholds, the status line, the session counts.

Installed next to the plugins (Python imports from a script's own directory), with haproxy_cli.py,
which reads haproxy's runtime API. Standard library plus Debian's python3-nagiosplugin, for the plugin
guidelines' range syntax, nothing else: NRPE hosts have no PyPI.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from haproxy_cli import CliError, every_worker, proxy_rows
from nagiosplugin import Range

# The bundle's version (pyproject.toml); tests/haproxy checks they agree.
VERSION = "1.1.0"

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}

DEFAULT_SOCKET = "/run/haproxy/admin.sock"
DEFAULT_PROXY = "fedmsg-raw-zmq"


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
        except CliError as exc:
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


def info_fields(info: str) -> dict[str, str]:
    """`show info` as a dict; UNKNOWN unless it looks like haproxy's answer."""
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
    if fields.get("Name") != "HAProxy":
        raise CliError(f"unexpected answer to 'show info': {info[:80].strip()!r}")
    return fields


def frontend_sessions(stat_csv: str, proxy: str) -> tuple[int, int]:
    """Return (scur, slim) of the proxy's FRONTEND row in `show stat` output."""
    frontend = proxy_rows(stat_csv, proxy).get("FRONTEND")
    if frontend is None:
        raise CliError(f"proxy {proxy} has no FRONTEND row: name a listen or frontend section")
    # A backend's slim is its fullconn, not a session limit, hence FRONTEND only.
    if not frontend["slim"] or int(frontend["slim"]) == 0:
        raise CliError(f"proxy {proxy} reports no session limit (slim empty or 0): set its maxconn")
    return int(frontend["scur"]), int(frontend["slim"])


def global_sessions(info: str) -> tuple[int, int]:
    """Return (CurrConns, Maxconn) from `show info` output."""
    fields = info_fields(info)
    try:
        current, limit = int(fields["CurrConns"]), int(fields["Maxconn"])
    except (KeyError, ValueError):
        raise CliError(f"unexpected answer to 'show info': {info[:80].strip()!r}") from None
    if limit == 0:
        raise CliError("haproxy reports a global Maxconn of 0")
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
