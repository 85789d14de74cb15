"""Gateway settings: TOML file, command-line overrides, validation.

Every problem is reported as one ConfigError naming the offending key (and the file it came from) so
that the daemon can print a single actionable line and exit 2 before touching the network.
"""

from __future__ import annotations

import dataclasses
import re

from fedmsg_gateway.settings import (
    HOST,
    ConfigError,
    endpoint_list,
    expect_bool,
    expect_int,
    listen_address,
    load_settings,
    metrics_address,
    optional_listen_key,
    parse_host_port,
    parse_int_flag,
    url_list,
)
from fedmsg_gateway.sockets import SOCKET_INT_MINIMUM, SocketSettings, reconnect_error

__all__ = ["Config", "ConfigError", "load", "parse_host_port"]

_BIND_TCP = re.compile(rf"tcp://(?P<host>{HOST}|\*):(?P<port>\d+)")


@dataclasses.dataclass(frozen=True)
class Config(SocketSettings):
    """Validated gateway settings; field names are the TOML keys (the bus-side ones in SocketSettings)."""

    endpoints: tuple[str, ...]
    binds: tuple[str, ...] = ("tcp://*:9940",)
    # 160000 messages per subscriber: the bus's historical value. HWM bounds the queue of each peer.
    send_hwm: int = 160000
    # Accept queue of each public port. After a restart every subscriber reconnects at once: with
    # libzmq's default, 100, SYNs are dropped and retried for seconds (bench/restart.py). The kernel
    # caps it at net.core.somaxconn (4096 by default).
    listen_backlog: int = 4096
    metrics: str = "127.0.0.1:9941"
    # haproxy's health check: GET /healthz, served by a Python thread, outside libzmq's I/O thread
    # (which greets late when it is busy fanning out). "": off.
    health: str = ""
    # libzmq I/O threads (ZMQ_IO_THREADS): they accept, greet and write to the subscribers' sockets. A
    # second one on 2 shared cores kept the greeting slow and the fan-out within noise (bench/failover.py).
    io_threads: int = 1


# Smallest accepted value per integer key.
_INT_MINIMUM = {
    "send_hwm": 0,
    "listen_backlog": 1,
    "io_threads": 1,
    **SOCKET_INT_MINIMUM,
}


def _validate(key: str, value: object) -> object:
    """Return the value converted for Config, or raise ValueError explaining what is wrong."""
    if key == "endpoints":
        return endpoint_list(value)
    if key == "binds":
        value = url_list(value, _BIND_TCP, "tcp://HOST:PORT, tcp://*:PORT or ipc://PATH")
        if not value:
            raise ValueError("at least one bind address is required")
        return value
    if key == "metrics":
        return metrics_address(value)
    if key == "health":
        return optional_listen_key(value)
    if key == "tcp_keepalive":
        return expect_bool(value)
    return expect_int(value, _INT_MINIMUM[key])


def load(
    path: str | None,
    *,
    endpoints: list[str] | None = None,
    binds: list[str] | None = None,
    send_hwm: str | None = None,
    metrics: str | None = None,
    health: str | None = None,
) -> Config:
    """Build the Config from an optional TOML file, then command-line values (which win)."""
    hwm = None if send_hwm is None else parse_int_flag("--hwm", send_hwm)
    flags = {"endpoints": endpoints or None, "binds": binds or None, "send_hwm": hwm}
    flags |= {"metrics": metrics, "health": health}
    return load_settings(Config, path, flags, _validate, _problem)


def _problem(config: Config) -> str | None:
    return reconnect_error(config) or _shared_address(config)


def _shared_address(config: Config) -> str | None:
    """Why `health` cannot be bound beside `metrics` (one line naming the key), or None."""
    if not (config.health and config.metrics):
        return None
    health_host, health_port = listen_address(config.health)
    metrics_host, metrics_port = parse_host_port(config.metrics)
    if health_port == metrics_port and health_host in (None, metrics_host):
        return f"health: {config.health!r} overlaps metrics ({config.metrics!r}): give it a port of its own"
    return None
