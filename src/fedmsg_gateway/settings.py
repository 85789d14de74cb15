"""What the daemons' settings have in common: TOML files, HOST:PORT values, one-line errors naming the key.

Shared by fedmsg_gateway.config and fedmsg_websocket.config so that both report problems the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tomllib
from collections.abc import Callable, Collection, Mapping
from typing import Any, NoReturn, TypeVar

from fedmsg_gateway.version import package_version

#: A DNS name or an IPv4 address.
HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
_HOST_PORT = re.compile(rf"(?P<host>{HOST}):(?P<port>\d+)")
_ENDPOINT_TCP = re.compile(rf"tcp://(?P<host>{HOST}):(?P<port>\d+)")


class ConfigError(Exception):
    """A setting is missing or invalid; str() is the one-line message for the operator."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other start-up error, instead of argparse's usage + message.
        self.exit(2, f"{self.prog}: {message}\n")


Settings = TypeVar("Settings")


def daemon_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The flags both daemons share; each adds its own, with `dest` the settings key it overrides."""
    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {package_version()}")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    parser.add_argument(
        "--endpoint",
        action="append",
        dest="endpoints",
        metavar="URL",
        help="bus endpoint to connect to (repeatable)",
    )
    parser.add_argument("--metrics", metavar="HOST:PORT", help='metrics HTTP address, "" to disable')
    parser.add_argument(
        "--check-config", action="store_true", help="validate the settings and exit: 0 if valid, 2 if not"
    )
    return parser


def settings_or_exit(
    parser: argparse.ArgumentParser, load: Callable[..., Settings], argv: list[str] | None
) -> Settings:
    """The settings from the command line: load(--config's path, every other flag by its dest).

    Exits 2 with load()'s one-line error, or 0 after a successful --check-config.
    """
    flags = vars(parser.parse_args(argv))
    path, check_only = flags.pop("config"), flags.pop("check_config")
    try:
        settings = load(path, **flags)
    except ConfigError as exc:
        sys.stderr.write(f"{parser.prog}: {exc}\n")
        sys.exit(2)
    if check_only:
        # What deployment tools run before a new file replaces the live one.
        sys.exit(0)
    return settings


def load_settings(
    factory: Callable[..., Settings],
    path: str | None,
    flags: Mapping[str, object],
    validate: Callable[[str, object], object],
    problem: Callable[[Settings], str | None],
) -> Settings:
    """A daemon's settings: the TOML file at `path` (if any), then the flags given (not None), which win.

    `factory` is the settings dataclass (its fields are the keys; `endpoints` is required), `validate`
    converts one key's value or raises ValueError, `problem` names what is wrong across keys (or None).
    """
    known = {field.name for field in dataclasses.fields(factory)}  # type: ignore[arg-type]
    settings: dict[str, object] = {}
    if path is not None:
        apply(settings, read_toml(path), f"{path}: ", known, validate)
    apply(settings, {key: value for key, value in flags.items() if value is not None}, "", known, validate)
    where = f"{path}: " if path is not None else ""
    if "endpoints" not in settings:
        raise ConfigError(f"{where}endpoints: at least one endpoint is required (or use --endpoint)")
    loaded = factory(**settings)
    wrong = problem(loaded)
    if wrong is not None:
        raise ConfigError(f"{where}{wrong}")
    return loaded


def check_port(text: str, whole: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be 1-65535, got {whole!r}")
    return port


def parse_host_port(value: str) -> tuple[str, int]:
    """Split "HOST:PORT"; raise ValueError with a readable reason."""
    match = _HOST_PORT.fullmatch(value)
    if match is None:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return match["host"], check_port(match["port"], value)


def listen_address(value: str) -> tuple[str | None, int]:
    """(host, port) from "HOST:PORT" or "*:PORT" (host None: every address)."""
    if value.startswith("*:"):
        return None, parse_host_port(f"localhost:{value[2:]}")[1]
    return parse_host_port(value)


def listen_key(value: object) -> str:
    """A listen address key: "HOST:PORT" or "*:PORT"."""
    if not isinstance(value, str):
        raise ValueError(f"expected HOST:PORT or *:PORT, got {value!r}")
    listen_address(value)
    return value


def optional_listen_key(value: object) -> str:
    """A listen address key that may be "" (off)."""
    if value == "":
        return ""
    return listen_key(value)


def _check_url(value: str, pattern: re.Pattern[str], form: str) -> None:
    if value.startswith("ipc://") and len(value) > len("ipc://"):
        return
    match = pattern.fullmatch(value)
    if match is None:
        raise ValueError(f"expected {form}, got {value!r}")
    check_port(match["port"], value)


def url_list(value: object, pattern: re.Pattern[str], form: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    for item in value:
        _check_url(item, pattern, form)
    if len(set(value)) != len(value):
        # The same endpoint twice would relay every message twice.
        raise ValueError(f"duplicate entries in {list(value)!r}")
    return tuple(value)


def endpoint_list(value: object) -> tuple[str, ...]:
    """Bus endpoints: a non-empty list of distinct ZeroMQ connect addresses."""
    endpoints = url_list(value, _ENDPOINT_TCP, "tcp://HOST:PORT or ipc://PATH")
    if not endpoints:
        raise ValueError("at least one endpoint is required")
    return endpoints


def metrics_address(value: object) -> str:
    """The metrics key: "HOST:PORT", or "" for no metrics."""
    if not isinstance(value, str):
        raise ValueError(f'expected "HOST:PORT" or "", got {value!r}')
    if value:
        parse_host_port(value)
    return value


def expect_int(value: object, minimum: int) -> int:
    # bool is an int subclass in Python: reject it explicitly so `send_hwm = true` is an error.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"must be >= {minimum}, got {value}")
    return value


def expect_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def apply(
    settings: dict[str, object],
    source: Mapping[str, object],
    prefix: str,
    known: Collection[str],
    validate: Callable[[str, object], object],
) -> None:
    """Validate every key of `source` into `settings`; `validate` raises ValueError saying what is wrong."""
    for key, value in source.items():
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown setting")
        try:
            settings[key] = validate(key, value)
        except ValueError as exc:
            raise ConfigError(f"{prefix}{key}: {exc}") from exc


def parse_int_flag(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{flag}: expected an integer, got {text!r}") from None
