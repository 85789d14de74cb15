"""Gateway settings: TOML file, command-line overrides, validation.

Every problem is reported as one ConfigError naming the offending key (and the file it came from) so
that the daemon can print a single actionable line and exit 2 before touching the network.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from typing import Any

#: HOST:PORT where HOST is a DNS name or an IPv4 address.
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
_ENDPOINT_TCP = re.compile(rf"tcp://(?P<host>{_HOST}):(?P<port>\d+)")
_BIND_TCP = re.compile(rf"tcp://(?P<host>{_HOST}|\*):(?P<port>\d+)")
_HOST_PORT = re.compile(rf"(?P<host>{_HOST}):(?P<port>\d+)")


class ConfigError(Exception):
    """A setting is missing or invalid; str() is the one-line message for the operator."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Validated gateway settings; field names are the TOML keys."""

    endpoints: tuple[str, ...]
    binds: tuple[str, ...] = ("tcp://*:9940",)
    # 160000 messages per subscriber: the bus's historical value. HWM bounds the queue of each peer.
    send_hwm: int = 160000
    receive_hwm: int = 160000
    tcp_keepalive: bool = True
    tcp_keepalive_idle: int = 60
    tcp_keepalive_interval: int = 5
    tcp_keepalive_count: int = 3
    # fedmsg settled on 100 ms doubling up to 1 s after reconnect storms with hundreds of endpoints.
    reconnect_interval_ms: int = 100
    reconnect_interval_max_ms: int = 1000
    # Accept queue of each public port. After a restart every subscriber reconnects at once: with
    # libzmq's default, 100, SYNs are dropped and retried for seconds (bench/restart.py). The kernel
    # caps it at net.core.somaxconn (4096 by default).
    listen_backlog: int = 4096
    metrics: str = "127.0.0.1:9941"


_FIELDS = {field.name: field for field in dataclasses.fields(Config)}
# Smallest accepted value per integer key: a zero interval or count would make libzmq spin or never retry.
_INT_MINIMUM = {
    "send_hwm": 0,
    "receive_hwm": 0,
    "tcp_keepalive_idle": 1,
    "tcp_keepalive_interval": 1,
    "tcp_keepalive_count": 1,
    "reconnect_interval_ms": 1,
    "reconnect_interval_max_ms": 0,
    "listen_backlog": 1,
}


def parse_host_port(value: str) -> tuple[str, int]:
    """Split "HOST:PORT"; raise ValueError with a readable reason."""
    match = _HOST_PORT.fullmatch(value)
    if match is None:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return match["host"], _port(match["port"], value)


def _port(text: str, whole: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be 1-65535, got {whole!r}")
    return port


def _check_url(value: str, pattern: re.Pattern[str], form: str) -> None:
    if value.startswith("ipc://") and len(value) > len("ipc://"):
        return
    match = pattern.fullmatch(value)
    if match is None:
        raise ValueError(f"expected {form}, got {value!r}")
    _port(match["port"], value)


def _url_list(key: str, value: object, pattern: re.Pattern[str], form: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    for item in value:
        _check_url(item, pattern, form)
    if len(set(value)) != len(value):
        # The same endpoint twice would relay every message twice.
        raise ValueError(f"duplicate entries in {list(value)!r}")
    if key == "endpoints" and not value:
        raise ValueError("at least one endpoint is required")
    return tuple(value)


def _validate(key: str, value: object) -> object:
    """Return the value converted for Config, or raise ValueError explaining what is wrong."""
    if key == "endpoints":
        return _url_list(key, value, _ENDPOINT_TCP, "tcp://HOST:PORT or ipc://PATH")
    if key == "binds":
        value = _url_list(key, value, _BIND_TCP, "tcp://HOST:PORT, tcp://*:PORT or ipc://PATH")
        if not value:
            raise ValueError("at least one bind address is required")
        return value
    if key == "metrics":
        if not isinstance(value, str):
            raise ValueError(f'expected "HOST:PORT" or "", got {value!r}')
        if value:
            parse_host_port(value)
        return value
    if key == "tcp_keepalive":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    # bool is an int subclass in Python: reject it explicitly so `send_hwm = true` is an error.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if value < _INT_MINIMUM[key]:
        raise ValueError(f"must be >= {_INT_MINIMUM[key]}, got {value}")
    return value


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _apply(settings: dict[str, object], source: Mapping[str, object], prefix: str) -> None:
    for key, value in source.items():
        if key not in _FIELDS:
            raise ConfigError(f"{prefix}{key}: unknown setting")
        try:
            settings[key] = _validate(key, value)
        except ValueError as exc:
            raise ConfigError(f"{prefix}{key}: {exc}") from exc


def _parse_int_flag(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{flag}: expected an integer, got {text!r}") from None


def load(
    path: str | None,
    *,
    endpoints: list[str] | None = None,
    binds: list[str] | None = None,
    send_hwm: str | None = None,
    metrics: str | None = None,
) -> Config:
    """Build the Config from an optional TOML file, then command-line values (which win)."""
    settings: dict[str, object] = {}
    if path is not None:
        _apply(settings, _read_toml(path), f"{path}: ")
    overrides: dict[str, object] = {}
    if endpoints:
        overrides["endpoints"] = endpoints
    if binds:
        overrides["binds"] = binds
    if send_hwm is not None:
        overrides["send_hwm"] = _parse_int_flag("--hwm", send_hwm)
    if metrics is not None:
        overrides["metrics"] = metrics
    _apply(settings, overrides, "")
    if "endpoints" not in settings:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}endpoints: at least one endpoint is required (or use --endpoint)")
    config = Config(**settings)  # type: ignore[arg-type]
    if 0 < config.reconnect_interval_max_ms < config.reconnect_interval_ms:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(
            f"{where}reconnect_interval_max_ms: must be 0 (no back-off) or >= reconnect_interval_ms"
            f" ({config.reconnect_interval_ms}), got {config.reconnect_interval_max_ms}"
        )
    return config
