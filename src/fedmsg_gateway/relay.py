"""The relay: bus endpoints (SUB) -> libzmq's C proxy loop -> public socket (PUB).

SUB/PUB rather than XSUB/XPUB keeps the gateway one-way: the frontend always subscribes to everything,
so public clients' subscriptions never travel upstream, and PUB discards anything a client sends.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import threading
from collections.abc import Callable, Iterable

import zmq

from fedmsg_gateway.config import Config
from fedmsg_gateway.sockets import tune

log = logging.getLogger(__name__)

_CONTROL = "inproc://fedmsg-gateway-control"
_MONITOR = "inproc://fedmsg-gateway-monitor"
#: Each stored in a frame of its own, native byte order (libzmq memcpy()s uint64_t values).
_COUNTER = struct.Struct("=Q")
#: libzmq up to 4.3.4 counts a multipart message once in STATISTICS; the proxy rewritten for 4.3.5
#: counts every frame (both measured: a 2-frame message counts 1, resp. 2). Byte counts agree.
STATISTICS_UNIT = "frames" if zmq.zmq_version_info() >= (4, 3, 5) else "messages"


class SetupError(Exception):
    """A socket could not be bound or connected; str() is the one-line reason."""


@dataclasses.dataclass(frozen=True)
class Counters:
    """The proxy's cumulative counters since start, in STATISTICS_UNIT and bytes."""

    received: int
    received_bytes: int
    sent: int
    sent_bytes: int


class Relay:
    """Owns the three proxy sockets and the thread running zmq.proxy_steerable over them."""

    def __init__(self, context: zmq.Context, config: Config) -> None:
        self._context = context
        self._frontend = context.socket(zmq.SUB)
        self._backend = context.socket(zmq.PUB)
        self._control = context.socket(zmq.REP)
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        #: PAIR receiving the public socket's connection events (see subscribers.py).
        self.monitor = context.socket(zmq.PAIR)
        try:
            self._setup(config)
        except SetupError:
            self.close()
            self.monitor.close(linger=0)
            raise

    def _setup(self, config: Config) -> None:
        # SNDHWM/RCVHWM, never the removed zmq.HWM. Both are per peer: SNDHWM bounds the queue to each
        # subscriber, RCVHWM the queue from each bus endpoint.
        self._frontend.setsockopt(zmq.RCVHWM, config.receive_hwm)
        self._backend.setsockopt(zmq.SNDHWM, config.send_hwm)
        self._backend.setsockopt(zmq.BACKLOG, config.listen_backlog)
        for sock in (self._frontend, self._backend):
            tune(sock, config)
        self._frontend.setsockopt(zmq.SUBSCRIBE, b"")
        self._control.setsockopt(zmq.LINGER, 0)
        self._control.bind(_CONTROL)
        # Monitor before binding so no accept goes unseen; our end has no HWM so that a burst of
        # reconnecting clients cannot overflow the event queue and skew the subscriber count.
        self._backend.monitor(_MONITOR, zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.monitor.setsockopt(zmq.LINGER, 0)
        self.monitor.setsockopt(zmq.RCVHWM, 0)
        self.monitor.connect(_MONITOR)
        _attach(self._backend.bind, config.binds, "bind", "bound")
        # tcp host names are resolved (and retried) by libzmq's I/O thread, so a host that is down or not
        # yet in DNS does not fail here.
        _attach(self._frontend.connect, config.endpoints, "connect to", "connecting to")

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            zmq.proxy_steerable(self._frontend, self._backend, None, self._control)
        except zmq.ZMQError:
            log.exception("relay stopped")

    def control_client(self) -> zmq.Socket:
        """A new REQ socket on the proxy's control socket, for use by one thread only."""
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(_CONTROL)
        return sock

    def stop(self, timeout: float) -> bool:
        """Ask the proxy loop to return, then close its sockets; False if it did not stop in time."""
        if self._thread.is_alive():
            with self.control_client() as sock:
                # The only commands libzmq accepts are PAUSE/RESUME/TERMINATE/STATISTICS: anything else
                # aborts the process. 4.3.5 answers TERMINATE, 4.3.4 does not: never wait for a reply.
                sock.send(b"TERMINATE")
                self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self.close()
        return True

    def close(self) -> None:
        """Close the proxy sockets; only once the proxy thread is no longer using them."""
        for sock in (self._frontend, self._backend, self._control):
            sock.close(linger=0)


def _attach(attach: Callable[[str], object], urls: Iterable[str], verb: str, done: str) -> None:
    """bind or connect a socket to each URL, logged; SetupError naming the URL if libzmq refuses one."""
    for url in urls:
        try:
            attach(url)
        except zmq.ZMQError as exc:
            raise SetupError(f"cannot {verb} {url}: {exc.strerror}") from exc
        log.info("%s %s", done, url)


def query_counters(sock: zmq.Socket, timeout_ms: int) -> Counters | None:
    """Ask the proxy for STATISTICS over a control_client() socket; None if it did not answer in time.

    After a timeout the REQ socket is stuck waiting for the reply: the caller must replace it.
    """
    sock.send(b"STATISTICS")
    if not sock.poll(timeout_ms):
        return None
    frames = sock.recv_multipart()
    values = [_COUNTER.unpack(frame)[0] for frame in frames]
    # Frontend in, backend out: what the gateway took from the bus and handed to the public socket.
    frontend_in, frontend_in_bytes, _, _, _, _, backend_out, backend_out_bytes = values
    return Counters(frontend_in, frontend_in_bytes, backend_out, backend_out_bytes)
