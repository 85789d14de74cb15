"""fedmsg-websocket: command line, start-up order, systemd notifications and shutdown."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys
import time
from typing import NoReturn

import zmq

from fedmsg_gateway.exporter import Exporter
from fedmsg_gateway.journal import setup_logging
from fedmsg_gateway.notify import Heartbeat, bus_status, notify
from fedmsg_gateway.settings import daemon_parser, settings_or_exit
from fedmsg_websocket import health
from fedmsg_websocket.bus import BusReader, SetupError
from fedmsg_websocket.compat import Connection
from fedmsg_websocket.config import Config, load
from fedmsg_websocket.fanout import Fanout
from fedmsg_websocket.metrics import Metrics
from fedmsg_websocket.registry import Registry
from fedmsg_websocket.routes import make_router
from fedmsg_websocket.server import Clients, serve

log = logging.getLogger("fedmsg_websocket")

PROG = "fedmsg-websocket"
# Allowances on stop; together well under systemd's (and the tests') 2 s.
_SERVER_STOP_TIMEOUT = 1.2
_READER_STOP_TIMEOUT = 0.5


def _parser() -> argparse.ArgumentParser:
    parser = daemon_parser(PROG, "Serve the fedmsg bus to WebSocket clients and browsers.")
    parser.add_argument("--bind", metavar="HOST:PORT", help="HTTP/WebSocket listen address (*:PORT: all)")
    parser.add_argument("--state-dir", metavar="DIR", help="directory for state kept on disk")
    return parser


def main(argv: list[str] | None = None) -> NoReturn:
    args = _parser().parse_args(argv)
    config = settings_or_exit(
        PROG,
        lambda: load(
            args.config,
            endpoints=args.endpoint,
            bind=args.bind,
            metrics=args.metrics,
            state_dir=args.state_dir,
        ),
        args.check_config,
    )
    setup_logging()
    # websockets logs every connection at INFO: thousands of clients would flood the journal.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    sys.exit(asyncio.run(run(config)))


async def run(config: Config) -> int:
    """Serve until SIGTERM/SIGINT (0) or until the bus reader dies or a bind fails (1)."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[signal.Signals] = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, functools.partial(_set_once, stop, signum))
    context = zmq.Context()
    try:
        bus = BusReader(context, config, loop)
    except SetupError as exc:
        log.error("%s", exc)
        context.term()
        return 1
    registry: Registry[Connection] = Registry()
    fanout = Fanout(registry, config.max_queue_bytes)
    clients = Clients(registry, config.max_subscriptions)
    router = make_router(lambda: health.problem(bus.is_alive(), time.monotonic() - fanout.last_batch))
    metrics = Metrics(bus, fanout, clients, registry)
    try:
        server = await serve(config, clients, router)
    except OSError as exc:
        log.error("cannot listen on %s: %s", config.bind, exc.strerror or exc)
        bus.stop(0)
        context.term()
        return 1
    exporter = None
    if config.metrics:
        try:
            exporter = Exporter(config.metrics, metrics.render)
        except OSError as exc:
            log.error("cannot serve metrics on %s: %s", config.metrics, exc.strerror or exc)
            server.close()
            bus.stop(0)
            context.term()
            return 1
        exporter.start()
        log.info("metrics on http://%s/metrics", config.metrics)
    bus.start(fanout.deliver)
    notify("READY=1")
    log.info("serving %d endpoint(s) on ws://%s/", len(config.endpoints), config.bind)
    status = await _wait_for_stop(stop, bus, Heartbeat(lambda: _status(metrics, bus)))
    notify("STOPPING=1")
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), _SERVER_STOP_TIMEOUT)
    except TimeoutError:
        log.warning("some clients did not close in time")
    if exporter is not None:
        exporter.stop()
    if bus.stop(_READER_STOP_TIMEOUT):
        context.term()
    else:
        log.warning("bus reader did not stop in time")
    return status


def _set_once(stop: asyncio.Future[signal.Signals], signum: signal.Signals) -> None:
    if not stop.done():
        stop.set_result(signum)


def _status(metrics: Metrics, bus: BusReader) -> str:
    """What `systemctl status fedmsg-websocket` shows."""
    return bus_status(f"{metrics.clients} clients", metrics.last_message_age, bus.received > 0)


async def _wait_for_stop(stop: asyncio.Future[signal.Signals], bus: BusReader, heartbeat: Heartbeat) -> int:
    while True:
        done, _ = await asyncio.wait([stop], timeout=heartbeat.tick)
        if done:
            log.info("stopping on %s", stop.result().name)
            return 0
        if not bus.is_alive():
            log.error("bus reader thread died; exiting")
            return 1
        heartbeat.beat()


if __name__ == "__main__":
    main()
