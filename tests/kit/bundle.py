"""Facts of the bundle the tests compare the running system with, read from where the bundle keeps them."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[2]


@cache
def role_defaults(role: str) -> dict[str, Any]:
    """A role's defaults/main.yml: what a host gets where the inventory sets nothing."""
    return yaml.safe_load((PROJECT / "roles" / role / "defaults" / "main.yml").read_text())


def role_default(role: str, variable: str) -> Any:  # noqa: ANN401 (a YAML value: str, int, list, ...)
    return role_defaults(role)[variable]


def role_constant(role: str, variable: str) -> Any:  # noqa: ANN401
    """A role's internal constant (vars/main.yml, `__`-prefixed): not for the inventory to tune."""
    return yaml.safe_load((PROJECT / "roles" / role / "vars" / "main.yml").read_text())[variable]


# haproxy's sockets, where the haproxy role puts them.
STATS_SOCKET: str = role_default("haproxy", "haproxy_stats_socket")
MASTER_SOCKET: str = role_default("haproxy", "haproxy_master_socket")
# The public proxies (listen sections) of haproxy.cfg, in the order the monitoring roles check them.
RAW_PROXY, WEBSOCKET_PROXY = role_default("nagios_nrpe", "nagios_nrpe_haproxy_proxies")
NRPE_PORT: int = role_constant("nagios_nrpe", "__nagios_nrpe_port")
# Where the nagios_nrpe role installs the plugins on the hosts.
NRPE_PLUGIN_DIR: str = role_constant("nagios_nrpe", "__nagios_nrpe_plugin_dir")
