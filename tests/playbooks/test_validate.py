"""playbooks/validate.yml on the real production inventory: a wrong variable stops it, named.

The play runs on this machine (connection local, no fact gathering: nothing of the inventory is
contacted) with the inventory's own variables plus one wrong value, and must fail in the check
that names it, on the host that has it, with every other host's checks passing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ansible_json
import pytest
from ansible_json import INVENTORY_VAULT, LOCAL
from test_firewall_rules import INVENTORY, port_of

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "validate.yml"
GATEWAY, PROXY = "busgateway01.iad2.fedoraproject.org", "proxy01.iad2.fedoraproject.org"


def failed_checks(tmp_path: Path, extra_vars: dict[str, object]) -> dict[str, list[str]]:
    """host -> the messages of the checks that failed there (a loop's failed items one by one)."""
    package = tmp_path / "fedmsg-gateway.deb"  # fedmsg_package's check wants the .deb to exist
    package.touch()
    variables = {**INVENTORY_VAULT, **LOCAL, "fedmsg_package_deb": str(package), **extra_vars}
    command = ["ansible-playbook", "-i", str(ROOT / "inventory" / "production"), str(PLAYBOOK)]
    report = ansible_json.ansible_json([*command, "-e", json.dumps(variables)], tmp_path, timeout=300)
    failed: dict[str, list[str]] = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                results: list[dict[str, Any]] = result.get("results", [result])
                failed.setdefault(host, []).extend(r.get("msg", "") for r in results if r.get("failed"))
    return {host: messages for host, messages in failed.items() if messages}


def test_the_inventory_passes(tmp_path: Path) -> None:
    assert failed_checks(tmp_path, {}) == {}


@pytest.mark.parametrize(
    ("port", "clashes_with"),
    [
        (port_of("fedmsg_gateway_metrics"), "fedmsg_gateway_metrics"),
        (INVENTORY["fedmsg_websocket_port"], "fedmsg_websocket_port"),
        (port_of("fedmsg_websocket_metrics"), "fedmsg_websocket_metrics"),
    ],
    ids=["gateway metrics", "websocket", "websocket metrics"],
)
def test_health_port_clashing_with_a_port_of_the_gateway_host_fails(
    port: int, clashes_with: str, tmp_path: Path
) -> None:
    failed = failed_checks(tmp_path, {"fedmsg_gateway_health_port": port})
    assert set(failed) == {GATEWAY}, failed  # production's one gateway; the proxies' checks pass
    (message,) = failed[GATEWAY]
    assert message.startswith("fedmsg_gateway_health_port "), message
    assert clashes_with in message
    assert str(port) in message


def test_stats_from_groups_with_a_loopback_stats_bind_fails(tmp_path: Path) -> None:
    # Production admits its monitoring group to the admin address (haproxy_stats_from_groups).
    failed = failed_checks(tmp_path, {"haproxy_stats_bind": "127.0.0.1:8404"})
    assert set(failed) == {PROXY, "proxy02.iad2.fedoraproject.org", "proxy03.iad2.fedoraproject.org"}, failed
    (message,) = failed[PROXY]
    assert message.startswith("haproxy_stats_from_groups opens the admin port"), message
    assert "haproxy_stats_bind (127.0.0.1:8404)" in message


@pytest.mark.parametrize("daemon", ["fedmsg_gateway", "fedmsg_websocket"])
def test_metrics_from_groups_with_a_loopback_metrics_address_fails(daemon: str, tmp_path: Path) -> None:
    # Production admits its monitoring group to both daemons' metrics (DAEMON_metrics_from_groups).
    failed = failed_checks(tmp_path, {f"{daemon}_metrics": "127.0.0.1:9999"})
    assert set(failed) == {GATEWAY}, failed
    (message,) = failed[GATEWAY]
    assert message.startswith(f"{daemon}_metrics_from_groups opens the metrics port"), message
    assert f"{daemon}_metrics (127.0.0.1:9999)" in message
