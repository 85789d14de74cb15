"""TCP keepalive and reconnect settings of a ZeroMQ socket, shared by the gateway and fedmsg-websocket."""

from __future__ import annotations

import dataclasses

import zmq

#: Smallest accepted value of each key: a zero interval or count would make libzmq spin or never retry.
SOCKET_INT_MINIMUM = {
    "receive_hwm": 0,
    "tcp_keepalive_idle": 1,
    "tcp_keepalive_interval": 1,
    "tcp_keepalive_count": 1,
    "reconnect_interval_ms": 1,
    "reconnect_interval_max_ms": 0,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SocketSettings:
    """The bus-side socket keys of both daemons' configs (same names, defaults and meaning)."""

    # Messages queued per bus endpoint (ZMQ_RCVHWM); 160000 is the bus's historical value.
    receive_hwm: int = 160000
    tcp_keepalive: bool = True
    tcp_keepalive_idle: int = 60
    tcp_keepalive_interval: int = 5
    tcp_keepalive_count: int = 3
    # fedmsg settled on 100 ms doubling up to 1 s after reconnect storms with hundreds of endpoints.
    reconnect_interval_ms: int = 100
    reconnect_interval_max_ms: int = 1000


def tune(sock: zmq.Socket, settings: SocketSettings) -> None:
    # Linger 0: on shutdown, queued messages for slow subscribers are dropped instead of delaying exit.
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1 if settings.tcp_keepalive else 0)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, settings.tcp_keepalive_idle)
    sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, settings.tcp_keepalive_interval)
    sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, settings.tcp_keepalive_count)
    sock.setsockopt(zmq.RECONNECT_IVL, settings.reconnect_interval_ms)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, settings.reconnect_interval_max_ms)


def reconnect_error(settings: SocketSettings) -> str | None:
    """Why the reconnect back-off is inconsistent (one line naming the key), or None."""
    if 0 < settings.reconnect_interval_max_ms < settings.reconnect_interval_ms:
        return (
            f"reconnect_interval_max_ms: must be 0 (no back-off) or >= reconnect_interval_ms"
            f" ({settings.reconnect_interval_ms}), got {settings.reconnect_interval_max_ms}"
        )
    return None
