"""fedmsg-gateway: command line, start-up order, systemd notifications and shutdown."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import NoReturn

import zmq

from fedmsg_gateway import __version__
from fedmsg_gateway.config import Config, ConfigError, load
from fedmsg_gateway.exporter import Exporter
from fedmsg_gateway.metrics import Metrics
from fedmsg_gateway.notify import notify, watchdog_interval
from fedmsg_gateway.relay import Relay, SetupError
from fedmsg_gateway.subscribers import SubscriberTracker

log = logging.getLogger("fedmsg_gateway")

PROG = "fedmsg-gateway"
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# How often the main thread checks the relay thread when no watchdog interval is set.
_CHECK_INTERVAL = 1.0
# Per-component shutdown allowance; all of them together stay well under systemd's 2 s expectation.
_STOP_TIMEOUT = 0.5


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other start-up error, instead of argparse's usage + message.
        self.exit(2, f"{self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Relay every fedmsg bus message to a public ZeroMQ PUB socket.")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    parser.add_argument(
        "--endpoint", action="append", metavar="URL", help="bus endpoint to connect to (repeatable)"
    )
    parser.add_argument("--bind", action="append", metavar="URL", help="public address to bind (repeatable)")
    parser.add_argument("--hwm", metavar="N", help="send high-water mark per subscriber, in messages")
    parser.add_argument("--metrics", metavar="HOST:PORT", help='metrics HTTP address, "" to disable')
    parser.add_argument(
        "--check-config", action="store_true", help="validate the settings and exit: 0 if valid, 2 if not"
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def main(argv: list[str] | None = None) -> NoReturn:
    args = _parser().parse_args(argv)
    try:
        config = load(
            args.config, endpoints=args.endpoint, binds=args.bind, send_hwm=args.hwm, metrics=args.metrics
        )
    except ConfigError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        sys.exit(2)
    if args.check_config:
        # What deployment tools run before a new file replaces the live one.
        sys.exit(0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    # Block the stop signals before any thread exists (threads inherit the mask, libzmq's included):
    # the main thread then takes them synchronously with sigtimedwait, no handler races.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    sys.exit(run(config))


def run(config: Config) -> int:
    """Relay until SIGTERM/SIGINT (0) or until the relay fails (1)."""
    context = zmq.Context()
    try:
        relay = Relay(context, config)
    except SetupError as exc:
        log.error("%s", exc)
        context.term()
        return 1
    tracker = SubscriberTracker(relay.monitor)
    metrics = Metrics(relay, lambda: tracker.count)
    exporter = None
    if config.metrics:
        try:
            exporter = Exporter(config.metrics, metrics.render)
        except OSError as exc:
            log.error("cannot serve metrics on %s: %s", config.metrics, exc.strerror or exc)
            relay.close()
            relay.monitor.close(linger=0)
            context.term()
            return 1
        log.info("metrics on http://%s/metrics", config.metrics)
    tracker.start()
    relay.start()
    metrics.start()
    if exporter is not None:
        exporter.start()
    notify("READY=1")
    log.info("relaying %d endpoint(s) to %s", len(config.endpoints), ", ".join(config.binds))
    status = _wait_for_stop(relay)
    if exporter is not None:
        exporter.stop()
    metrics.stop(_STOP_TIMEOUT)
    tracker.stop(_STOP_TIMEOUT)
    if relay.stop(_STOP_TIMEOUT):
        context.term()
    else:
        # Its sockets are still in use: leave them (and the context) to process exit.
        log.warning("relay did not stop in time")
    return status


def _wait_for_stop(relay: Relay) -> int:
    interval = watchdog_interval()
    while True:
        received = signal.sigtimedwait(_STOP_SIGNALS, interval or _CHECK_INTERVAL)
        if received is not None:
            notify("STOPPING=1")
            log.info("stopping on %s", signal.Signals(received.si_signo).name)
            return 0
        if not relay.is_alive():
            log.error("relay thread died; exiting")
            return 1
        if interval:
            notify("WATCHDOG=1")


if __name__ == "__main__":
    main()
