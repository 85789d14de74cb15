"""check_fedmsg_gateway: Nagios plugin reading the gateway's /metrics.

Exit codes follow the plugin API: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from typing import NoReturn

from fedmsg_gateway.settings import parse_host_port

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
    parser = _Parser(prog="check_fedmsg_gateway", description="Nagios check for fedmsg-gateway.")
    parser.add_argument(
        "--metrics", type=_address, default="127.0.0.1:9941", metavar="HOST:PORT", help="metrics address"
    )
    parser.add_argument(
        "--warning", type=float, default=300, metavar="SECONDS", help="WARNING when no message for this long"
    )
    parser.add_argument(
        "--critical",
        type=float,
        default=0,
        metavar="SECONDS",
        help="CRITICAL when no message for this long (0: staleness is never critical)",
    )
    parser.add_argument("--timeout", type=float, default=5, metavar="SECONDS", help="HTTP timeout")
    return parser


def parse_metrics(text: str, prefix: str = _PREFIX) -> dict[str, float]:
    """The samples named PREFIX* (fedmsg_gateway_* by default) of a Prometheus text page, without it."""
    samples = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, value = line.split()
            samples[name.removeprefix(prefix)] = float(value)
    return samples


def _threshold(value: float) -> str:
    # Nagios perfdata leaves a threshold empty when it does not apply.
    return f"{value:g}" if value > 0 else ""


def evaluate(samples: dict[str, float], warning: float, critical: float) -> tuple[int, str]:
    """The state and the status line for parsed samples; KeyError if a metric is missing."""
    # Older libzmq counts messages, newer counts frames: report whichever unit the daemon exposes.
    unit = "messages" if "messages_received_total" in samples else "frames"
    received = int(samples[f"{unit}_received_total"])
    subscribers = int(samples["subscribers"])
    age = samples["last_message_age_seconds"]
    if samples["up"] != 1:
        state, summary = CRITICAL, "relay is down"
    elif critical > 0 and age >= critical:
        state, summary = CRITICAL, f"no message for {age:.0f}s"
    elif warning > 0 and age >= warning:
        state, summary = WARNING, f"no message for {age:.0f}s"
    else:
        state, summary = OK, f"last message {age:.0f}s ago"
    perfdata = (
        f"'{unit}_received'={received}c;;;0 'subscribers'={subscribers};;;0"
        f" 'last_message_age'={age:.3f}s;{_threshold(warning)};{_threshold(critical)};0"
    )
    line = f"{summary}, {subscribers} subscribers, {received} {unit} received | {perfdata}"
    return state, line


def check(address: str, warning: float, critical: float, timeout: float) -> tuple[int, str]:
    url = "http://{}:{}/metrics".format(*parse_host_port(address))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http URL built above)
            text = response.read().decode()
    except (OSError, urllib.error.URLError) as exc:
        return CRITICAL, f"no answer from {url}: {getattr(exc, 'reason', exc)}"
    try:
        return evaluate(parse_metrics(text), warning, critical)
    except (KeyError, ValueError) as exc:
        return UNKNOWN, f"cannot parse {url}: {exc!r}"


def main(argv: list[str] | None = None) -> NoReturn:
    args = _parser().parse_args(argv)
    state, line = check(args.metrics, args.warning, args.critical, args.timeout)
    sys.stdout.write(f"FEDMSG-GATEWAY {_NAMES[state]} - {line}\n")
    sys.exit(state)


if __name__ == "__main__":
    main()
