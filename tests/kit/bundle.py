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
# The public proxies (listen sections) of haproxy.cfg, as the haproxy role names them.
RAW_PROXY: str = role_default("haproxy", "haproxy_fedmsg_proxy")
WEBSOCKET_PROXY: str = role_default("haproxy", "haproxy_websocket_proxy")
NRPE_PORT: int = role_constant("nagios_nrpe", "__nagios_nrpe_port")
# Where the nagios_nrpe role installs the plugins on the hosts.
NRPE_PLUGIN_DIR: str = role_constant("nagios_nrpe", "__nagios_nrpe_plugin_dir")
# The ports the gateway's two daemons serve /metrics on, where their roles put them.
GATEWAY_METRICS_PORT = int(role_default("fedmsg_gateway", "fedmsg_gateway_metrics").rpartition(":")[2])
WEBSOCKET_METRICS_PORT = int(role_default("fedmsg_websocket", "fedmsg_websocket_metrics").rpartition(":")[2])
