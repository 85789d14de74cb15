"""fedmsg-websocket settings: TOML file, command-line overrides, validation.

Same style as the gateway's (fedmsg_gateway.settings): every problem is one ConfigError naming the key, so
the daemon prints one line and exits 2 before touching the network.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from fedmsg_gateway.settings import (
    ConfigError,
    endpoint_list,
    expect_bool,
    expect_int,
    listen_address,
    listen_key,
    load_settings,
    metrics_address,
    parse_host_port,
)
from fedmsg_gateway.sockets import SOCKET_INT_MINIMUM, SocketSettings, reconnect_error

__all__ = ["COMPRESSIONS", "Config", "ConfigError", "listen_address", "load"]

#: Accepted values of `compression`: "" sends frames as they are, "deflate" negotiates permessage-deflate.
COMPRESSIONS = ("", "deflate")


@dataclasses.dataclass(frozen=True)
class Config(SocketSettings):
    """Validated settings; field names are the TOML keys (the bus-side ones in SocketSettings)."""

    endpoints: tuple[str, ...]
    bind: str = "*:9919"
    # Beside its 9919, clear of the gateway's ports (9940-9944 in the inventories, metrics on 9941).
    metrics: str = "127.0.0.1:9929"
    # Where the catch-up window lives (window.py); "": no window (/raw answers 503, resumes start live).
    state_dir: str = ""
    # The window keeps messages for this many seconds, and at most this many payload bytes (topic + body):
    # Fedora's bus (~0.7 msg/s of ~3 KB) fills 7 days with ~423000 messages, ~1.3 GB; 2 GiB keeps the 7 days
    # up to ~1.1 msg/s on average, and the newest 2 GiB beyond that.
    window_max_age: int = 7 * 24 * 3600
    window_max_bytes: int = 2 * 1024 * 1024 * 1024
    # A resume (SSE Last-Event-ID, the WebSocket resume frame) replays at most this many of the newest
    # stored messages before going live: ~8 h of Fedora's bus, ~60 MB at 3 KB.
    resume_max_messages: int = 20000
    # The other gateways' fedmsg-websocket (http://HOST:PORT): on start the window's gaps are fetched from
    # their /raw (backfill.py). Empty: the daemon answers with what it has.
    peers: tuple[str, ...] = ()
    # Bytes waiting to be written to one client before it is closed as too slow. 16 MiB holds a burst of
    # ~5000 typical (3 KB) messages for a client that reads at full speed but started behind.
    max_queue_bytes: int = 16 * 1024 * 1024
    # Largest frame a client may send; subscriptions are ~100 bytes. Bigger closes that client (1009).
    max_frame_bytes: int = 4096
    # Subscriptions one client may hold; more are ignored (and counted), so no client grows the
    # per-message prefix lookup without bound.
    max_subscriptions: int = 256
    # WebSocket ping every ping_interval seconds (0: never); no pong within ping_timeout closes the client.
    ping_interval: int = 20
    ping_timeout: int = 20
    # Measured in bench/websocket.py (docs/performance.md): deflate costs more CPU than it saves here.
    compression: str = ""
    # Accept queue of the listening socket: after a restart every client reconnects at once (the
    # gateway's listen_backlog, measured there). The kernel caps it at net.core.somaxconn.
    listen_backlog: int = 4096


_INT_MINIMUM = {
    "window_max_age": 60,
    "window_max_bytes": 1024 * 1024,
    "resume_max_messages": 1,
    "max_queue_bytes": 65536,
    "max_frame_bytes": 128,
    "max_subscriptions": 1,
    "ping_interval": 0,
    "ping_timeout": 1,
    "listen_backlog": 1,
    **SOCKET_INT_MINIMUM,
}


def _state_dir(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a directory path, got {value!r}")
    if value and not os.path.isdir(value):
        raise ValueError(f"not a directory: {value!r}")
    if value and not os.access(value, os.W_OK | os.X_OK):
        raise ValueError(f"not writable: {value!r}")
    return value


def _peers(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(peer, str) for peer in value):
        raise ValueError(f"expected a list of base URLs http://HOST:PORT, got {value!r}")
    for peer in value:
        scheme, _, rest = peer.partition("://")
        if scheme not in ("http", "https") or not rest.rstrip("/") or "/" in rest.rstrip("/"):
            raise ValueError(f"expected a base URL http://HOST:PORT, got {peer!r}")
        parse_host_port(rest.rstrip("/"))
    return tuple(peer.rstrip("/") for peer in value)


def _compression(value: object) -> str:
    if value not in COMPRESSIONS:
        raise ValueError(f'expected "" or "deflate", got {value!r}')
    return str(value)


_VALIDATORS: dict[str, Callable[[object], object]] = {
    "endpoints": endpoint_list,
    "bind": listen_key,
    "metrics": metrics_address,
    "state_dir": _state_dir,
    "compression": _compression,
    "peers": _peers,
    "tcp_keepalive": expect_bool,
}


def _validate(key: str, value: object) -> object:
    """Return the value converted for Config, or raise ValueError explaining what is wrong."""
    validator = _VALIDATORS.get(key)
    if validator is not None:
        return validator(value)
    return expect_int(value, _INT_MINIMUM[key])


def load(
    path: str | None,
    *,
    endpoints: list[str] | None = None,
    bind: str | None = None,
    metrics: str | None = None,
    state_dir: str | None = None,
) -> Config:
    """Build the Config from an optional TOML file, then command-line values (which win)."""
    flags = {"endpoints": endpoints or None, "bind": bind, "metrics": metrics, "state_dir": state_dir}
    return load_settings(Config, path, flags, _validate, reconnect_error)
