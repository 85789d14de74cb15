"""fedmsg-gateway: command line, start-up order, systemd notifications and shutdown."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

import zmq

from fedmsg_gateway import health
from fedmsg_gateway.config import Config, load
from fedmsg_gateway.exporter import Exporter, HttpServer, health_server
from fedmsg_gateway.journal import setup_logging
from fedmsg_gateway.metrics import Metrics
from fedmsg_gateway.notify import Heartbeat, Watch, bus_status, notify
from fedmsg_gateway.relay import Relay, SetupError
from fedmsg_gateway.settings import daemon_parser, settings_or_exit
from fedmsg_gateway.subscribers import SubscriberTracker

log = logging.getLogger("fedmsg_gateway")

PROG = "fedmsg-gateway"
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# Per-component shutdown allowance; all of them together stay well under systemd's 2 s expectation.
_STOP_TIMEOUT = 0.5


def _parser() -> argparse.ArgumentParser:
    parser = daemon_parser(PROG, "Relay every fedmsg bus message to a public ZeroMQ PUB socket.")
    parser.add_argument(
        "--bind", action="append", dest="binds", metavar="URL", help="public address to bind (repeatable)"
    )
    parser.add_argument(
        "--hwm", dest="send_hwm", metavar="N", help="send high-water mark per subscriber, in messages"
    )
    parser.add_argument(
        "--health", metavar="HOST:PORT", help='health check HTTP address (GET /healthz), "" disables'
    )
    return parser


def main(argv: list[str] | None = None) -> NoReturn:
    config = settings_or_exit(_parser(), load, argv)
    setup_logging()
    # Block the stop signals before any thread exists (threads inherit the mask, libzmq's included):
    # one thread then takes them synchronously with sigwaitinfo, no handler races.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    sys.exit(run(config))


def run(config: Config) -> int:
    """Relay until SIGTERM/SIGINT (0) or until the relay fails (1)."""
    context = zmq.Context(io_threads=config.io_threads)
    try:
        relay = Relay(context, config)
    except SetupError as exc:
        log.error("%s", exc)
        context.term()
        return 1
    tracker = SubscriberTracker(relay.monitor)
    metrics = Metrics(relay, lambda: tracker.count)
    wanted: list[tuple[str, str, Callable[[], HttpServer]]] = []  # what, URL, server
    if config.metrics:
        wanted.append(
            ("metrics", f"http://{config.metrics}/metrics", lambda: Exporter(config.metrics, metrics.render))
        )
    if config.health:
        problem = health.checker(relay.is_alive, lambda: metrics.answered_at)
        wanted.append(
            ("health check", f"http://{config.health}/healthz", lambda: health_server(config.health, problem))
        )
    servers: list[HttpServer] = []
    for what, address, make in wanted:
        try:
            servers.append(make())
        except OSError as exc:
            log.error("cannot serve %s on %s: %s", what, address, exc.strerror or exc)
            for server in servers:
                server.stop()
            relay.close()
            relay.monitor.close(linger=0)
            context.term()
            return 1
        log.info("%s on %s", what, address)
    tracker.start()
    relay.start()
    metrics.start()
    for server in servers:
        server.start()
    notify("READY=1")
    log.info("relaying %d endpoint(s) to %s", len(config.endpoints), ", ".join(config.binds))
    status = _wait_for_stop(Watch(log, "relay", relay.is_alive, Heartbeat(lambda: _status(metrics))))
    for server in servers:
        server.stop()
    metrics.stop(_STOP_TIMEOUT)
    tracker.stop(_STOP_TIMEOUT)
    if relay.stop(_STOP_TIMEOUT):
        context.term()
    else:
        # Its sockets are still in use: leave them (and the context) to process exit.
        log.warning("relay did not stop in time")
    return status


def _status(metrics: Metrics) -> str:
    """What `systemctl status fedmsg-gateway` shows."""
    peers = f"{metrics.subscribers} subscribers" + ("" if metrics.up else ", relay not answering")
    return bus_status(peers, metrics.last_message_age, metrics.received_any)


def _wait_for_stop(watch: Watch) -> int:
    # Not signal.sigtimedwait: when its timeout runs out while the process is stopped (SIGSTOP, a
    # debugger attached) CPython 3.11 to 3.13 returns an uninitialised siginfo on SIGCONT, which once
    # killed the daemon. sigwaitinfo has no timeout to run out, so it waits in a thread of its own.
    taken: list[signal.Signals] = []
    arrived = threading.Event()

    def take() -> None:
        taken.append(signal.Signals(signal.sigwaitinfo(_STOP_SIGNALS).si_signo))
        arrived.set()

    threading.Thread(target=take, name="stop-signals", daemon=True).start()
    while True:
        arrived.wait(watch.tick)
        status = watch.woke(taken[0] if taken else None)
        if status is not None:
            return status


if __name__ == "__main__":
    main()
