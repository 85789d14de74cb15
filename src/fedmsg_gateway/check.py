"""check_fedmsg_gateway: Nagios plugin reading the gateway's /metrics.

Follows the Nagios plugin guidelines: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one line of
output whatever happens, -V, -t bounding the whole check, -w/-c in the guidelines' range syntax
(Debian's python3-nagiosplugin parses them).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

from nagiosplugin import Range

from fedmsg_gateway.settings import parse_host_port
from fedmsg_gateway.version import package_version

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
_NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
_PREFIX = "fedmsg_gateway_"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Bad plugin arguments are UNKNOWN for Nagios, not argparse's exit 2 (which would read CRITICAL),
        # and Nagios shows stdout only.
        sys.stdout.write(f"FEDMSG-GATEWAY UNKNOWN - {message}\n")
        sys.exit(UNKNOWN)


def _address(value: str) -> str:
    try:
        parse_host_port(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="check_fedmsg_gateway",
        description="Nagios check for fedmsg-gateway: the relay is up, and how long since the last bus "
        "message. -w/-c are ranges of that age in seconds (guidelines syntax: 300 alerts above 300 s); "
        "without them the age never alerts.",
    )
    parser.add_argument(
        "-V", "--version", action="version", version=f"check_fedmsg_gateway {package_version()}"
    )
    parser.add_argument(
        "-m",
        "--metrics",
        type=_address,
        default="127.0.0.1:9941",
        metavar="HOST:PORT",
        help="metrics address",
    )
    parser.add_argument("-w", "--warning", type=Range, metavar="RANGE", help="last message age, seconds")
    parser.add_argument("-c", "--critical", type=Range, metavar="RANGE", help="last message age, seconds")
    parser.add_argument(
        "-t",
        "--timeout",
        type=float,
        default=5,
        metavar="SECONDS",
        help="UNKNOWN when the whole check has not finished in this time (default 5)",
    )
    return parser


def parse_metrics(text: str, prefix: str = _PREFIX) -> dict[str, float]:
    """The samples named PREFIX* (fedmsg_gateway_* by default) of a Prometheus text page, without it."""
    samples = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, value = line.split()
            samples[name.removeprefix(prefix)] = float(value)
    return samples


class _DeadlineError(Exception):
    """The whole check ran out of time."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    # A timer for the whole check, not urllib's per-read timeout: a peer that trickles bytes would
    # outlast that. The exception interrupts whatever blocking call is running (PEP 475).
    def expire(_signum: int, _frame: FrameType | None) -> NoReturn:
        raise _DeadlineError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _state(age: float, warning: Range | None, critical: Range | None) -> int:
    # The guidelines: alert when the value lies outside the range.
    if critical is not None and age not in critical:
        return CRITICAL
    if warning is not None and age not in warning:
        return WARNING
    return OK


def evaluate(samples: dict[str, float], warning: Range | None, critical: Range | None) -> tuple[int, str]:
    """The state and the status line for parsed samples; KeyError if a metric is missing."""
    # Older libzmq counts messages, newer counts frames: report whichever unit the daemon exposes.
    unit = "messages" if "messages_received_total" in samples else "frames"
    received = int(samples[f"{unit}_received_total"])
    subscribers = int(samples["subscribers"])
    age = samples["last_message_age_seconds"]
    if samples["up"] != 1:
        state, summary = CRITICAL, "relay is down"
    else:
        state = _state(age, warning, critical)
        summary = f"last message {age:.0f}s ago" if state == OK else f"no message for {age:.0f}s"
    # Nagios perfdata leaves a threshold empty when it does not apply.
    thresholds = ";".join("" if limit is None else str(limit) for limit in (warning, critical))
    perfdata = (
        f"'{unit}_received'={received}c;;;0 'subscribers'={subscribers};;;0"
        f" 'last_message_age'={age:.3f}s;{thresholds};0"
    )
    line = f"{summary}, {subscribers} subscribers, {received} {unit} received | {perfdata}"
    return state, line


def check(address: str, warning: Range | None, critical: Range | None, timeout: float) -> tuple[int, str]:
    url = "http://{}:{}/metrics".format(*parse_host_port(address))
    try:
        with _time_limit(timeout), urllib.request.urlopen(url) as response:  # noqa: S310 (http URL built above)
            text = response.read().decode()
    except _DeadlineError:
        return UNKNOWN, f"no complete answer from {url} within {timeout:g}s"
    except (OSError, urllib.error.URLError) as exc:
        return CRITICAL, f"no answer from {url}: {getattr(exc, 'reason', exc)}"
    try:
        return evaluate(parse_metrics(text), warning, critical)
    except (KeyError, ValueError) as exc:
        return UNKNOWN, f"cannot parse {url}: {exc!r}"


def main(argv: list[str] | None = None) -> NoReturn:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.timeout > 0:
        parser.error(f"--timeout must be a positive number of seconds, not {args.timeout:g}")
    try:
        state, line = check(args.metrics, args.warning, args.critical, args.timeout)
    except Exception as exc:  # a traceback would exit 1, which Nagios shows as WARNING with no text
        state, line = UNKNOWN, f"internal error: {exc!r}"
    sys.stdout.write(f"FEDMSG-GATEWAY {_NAMES[state]} - {line}\n")
    sys.exit(state)


if __name__ == "__main__":
    main()
