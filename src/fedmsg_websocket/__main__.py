"""fedmsg-websocket: command line, start-up order, systemd notifications and shutdown."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import logging
import signal
import sys
import time
from typing import NoReturn

import zmq

from fedmsg_gateway.exporter import Exporter
from fedmsg_gateway.journal import setup_logging
from fedmsg_gateway.notify import Heartbeat, Watch, bus_status, notify
from fedmsg_gateway.settings import daemon_parser, settings_or_exit
from fedmsg_websocket import health
from fedmsg_websocket.backfill import Backfill, Coverage, WriterWindow
from fedmsg_websocket.bus import BusReader, SetupError
from fedmsg_websocket.catchup import Catchup, Resume, resuming_channel
from fedmsg_websocket.compat import Connection
from fedmsg_websocket.config import Config, load
from fedmsg_websocket.fanout import Fanout, websocket_channel
from fedmsg_websocket.frames import Outgoing
from fedmsg_websocket.front import Handler
from fedmsg_websocket.metrics import Metrics
from fedmsg_websocket.raw import Raw
from fedmsg_websocket.reads import Reads
from fedmsg_websocket.registry import Registry
from fedmsg_websocket.routes import make_router
from fedmsg_websocket.server import Clients, serve
from fedmsg_websocket.sse import EventStream, Streams, sse_channel
from fedmsg_websocket.window import path_in
from fedmsg_websocket.writer import Writer

log = logging.getLogger("fedmsg_websocket")

PROG = "fedmsg-websocket"
# Allowances on stop; together well under systemd's (and the tests') 2 s.
_SERVER_STOP_TIMEOUT = 1.2
_READER_STOP_TIMEOUT = 0.5
_WRITER_STOP_TIMEOUT = 0.3


def _parser() -> argparse.ArgumentParser:
    parser = daemon_parser(PROG, "Serve the fedmsg bus to WebSocket clients and browsers.")
    parser.add_argument("--bind", metavar="HOST:PORT", help="HTTP/WebSocket listen address (*:PORT: all)")
    parser.add_argument("--state-dir", metavar="DIR", help="directory for state kept on disk")
    return parser


def main(argv: list[str] | None = None) -> NoReturn:
    config = settings_or_exit(_parser(), load, argv)
    setup_logging()
    # websockets logs every connection at INFO: thousands of clients would flood the journal.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    sys.exit(asyncio.run(run(config)))


@dataclasses.dataclass
class Daemon:
    """Everything that serves, wired together; run() starts and stops it."""

    config: Config
    loop: asyncio.AbstractEventLoop
    writer: Writer | None
    bus: BusReader
    fanout: Fanout
    clients: Clients
    router: Handler
    metrics: Metrics
    #: Fills the window's gaps from the peers once, after the start (backfill.py); None without a window.
    backfill: Backfill | None = None
    plain: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)

    def start_window(self) -> None:
        """The window's writer thread, and the back-fill of its gaps from the peers (a thread of its own,
        daemonic: at the stop the writer writes what it has queued, at most one peer's slice)."""
        if self.writer is not None:
            self.writer.start()
        if self.backfill is not None:
            self.backfill.start()

    def deliver(self, batch: list[Outgoing]) -> None:
        """Each bus batch: queued for the window (never waiting for it), then to every matching client."""
        if self.writer is not None:
            self.writer.submit(batch)
        self.fanout.deliver(batch)


def _wire(config: Config, loop: asyncio.AbstractEventLoop, context: zmq.Context) -> Daemon:
    """Build every part (SetupError if a bus endpoint is unusable); nothing is bound yet."""
    window = path_in(config.state_dir) if config.state_dir else ""
    writer = Writer(window, config.window_max_age, config.window_max_bytes, loop) if window else None
    newest = writer.newest if writer else 0
    bus = BusReader(context, config, loop, newest)
    websockets: Registry[Connection] = Registry()
    streams: Registry[EventStream] = Registry()
    resuming: Registry[Resume] = Registry()
    channels = [websocket_channel(websockets), sse_channel(streams), resuming_channel(resuming)]
    fanout = Fanout(channels, config.max_queue_bytes, newest)
    reads = Reads(window)
    catchup = Catchup(fanout, writer, reads, resuming, config.resume_max_messages)
    clients = Clients(websockets, config.max_subscriptions, catchup)
    sse = Streams(streams, catchup, config.max_subscriptions, config.ping_interval)
    raw = Raw(reads)
    router = make_router(
        lambda: health.problem(bus.is_alive(), time.monotonic() - fanout.last_batch),
        raw,
        sse.serve,
        Coverage(reads).answer,
    )
    backfill = (
        Backfill(WriterWindow(writer), config.peers, config.window_max_age) if writer is not None else None
    )
    metrics = Metrics(
        bus,
        fanout,
        clients,
        websockets,
        writer=writer,
        raw=raw,
        catchup=catchup,
        streams=sse,
        backfill=backfill,
    )
    return Daemon(config, loop, writer, bus, fanout, clients, router, metrics, backfill)


async def run(config: Config) -> int:
    """Serve until SIGTERM/SIGINT (0) or until the bus reader dies or a bind fails (1)."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[signal.Signals] = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, functools.partial(_set_once, stop, signum))
    context = zmq.Context()
    try:
        daemon = _wire(config, loop, context)
    except SetupError as exc:
        log.error("%s", exc)
        context.term()
        return 1
    bus = daemon.bus
    try:
        server = await serve(config, daemon.clients, daemon.router, daemon.plain)
    except OSError as exc:
        log.error("cannot listen on %s: %s", config.bind, exc.strerror or exc)
        bus.stop(0)
        context.term()
        return 1
    exporter = None
    if config.metrics:
        try:
            exporter = Exporter(config.metrics, daemon.metrics.render)
        except OSError as exc:
            log.error("cannot serve metrics on %s: %s", config.metrics, exc.strerror or exc)
            server.close()
            bus.stop(0)
            context.term()
            return 1
        exporter.start()
        log.info("metrics on http://%s/metrics", config.metrics)
    daemon.start_window()
    bus.start(daemon.deliver)
    notify("READY=1")
    log.info("serving %d endpoint(s) on ws://%s/", len(config.endpoints), config.bind)
    heartbeat = Heartbeat(lambda: _status(daemon.metrics, bus))
    status = await _wait_for_stop(stop, Watch(log, "bus reader", bus.is_alive, heartbeat))
    server.close()
    for task in daemon.plain:
        task.cancel()
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
    if daemon.writer is not None and not daemon.writer.stop(_WRITER_STOP_TIMEOUT):
        log.warning("window writer did not finish in time; SQLite keeps the window consistent")
    return status


def _set_once(stop: asyncio.Future[signal.Signals], signum: signal.Signals) -> None:
    if not stop.done():
        stop.set_result(signum)


def _status(metrics: Metrics, bus: BusReader) -> str:
    """What `systemctl status fedmsg-websocket` shows."""
    return bus_status(f"{metrics.clients} clients", metrics.last_message_age, bus.received > 0)


async def _wait_for_stop(stop: asyncio.Future[signal.Signals], watch: Watch) -> int:
    while True:
        done, _ = await asyncio.wait([stop], timeout=watch.tick)
        status = watch.woke(stop.result() if done else None)
        if status is not None:
            return status


if __name__ == "__main__":
    main()
