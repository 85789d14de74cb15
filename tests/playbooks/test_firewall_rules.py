"""playbooks/firewall.yml on the real inventories: each service role names its own ports.

The play runs in check mode on this machine (connection local, so no host of the inventory is
contacted) and the rule set it would write is read from its diff: what every gateway and proxy would
admit, with no port number in the inventory's firewall variables.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import ansible_json
import pytest
import yaml
from ansible_json import INVENTORY_VAULT, LOCAL
from kit.bundle import NRPE_PORT

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "firewall.yml"
WRITE_TASK = "firewall : Write the rule set"
PROXY, GATEWAY = "proxy01.iad2.fedoraproject.org", "busgateway01.iad2.fedoraproject.org"


def rule_sets(tmp_path: Path, extra_vars: dict[str, object] | None = None) -> dict[str, dict[str, set[int]]]:
    """host -> {"public" or "from GROUPS": ports} of the rule set the play would write."""
    return {host: admitted(text) for host, text in written_rule_sets(tmp_path, extra_vars).items()}


def written_rule_sets(
    tmp_path: Path,
    extra_vars: dict[str, object] | None = None,
    host_vars: dict[str, dict[str, object]] | None = None,
) -> dict[str, str]:
    """host -> the nftables rule set the play would write; HOST_VARS: inventory variables of single hosts."""
    variables = json.dumps({**INVENTORY_VAULT, **LOCAL, **(extra_vars or {})})
    inventories = ["-i", str(ROOT / "inventory" / "production")]
    if host_vars:
        scratch = tmp_path / "host_vars.yml"
        scratch.write_text(yaml.safe_dump({"all": {"hosts": host_vars}}))
        inventories += ["-i", str(scratch)]
    command = [
        "ansible-playbook", *inventories, str(PLAYBOOK),
        "--check", "--diff", "--limit", f"{PROXY},{GATEWAY}", "-e", variables,
    ]  # fmt: skip
    report = ansible_json.ansible_json(command, tmp_path, timeout=300)
    assert report["stats"][PROXY]["failures"] == 0, json.dumps(report)[-3000:]
    assert report["stats"][GATEWAY]["failures"] == 0, json.dumps(report)[-3000:]
    written = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == WRITE_TASK:
                for host, result in task["hosts"].items():
                    written[host] = result["diff"][0]["after"]
    return written


def admitted(rule_set: str) -> dict[str, set[int]]:
    rules: dict[str, set[int]] = {}
    comment = "public"
    for line in rule_set.splitlines():
        if match := re.match(r"\s*# [\d, ]+ from (.+)$", line):
            comment = f"from {match[1]}"
        elif match := re.match(r"\s*(?:ip6? saddr \{[^}]*\} )?tcp dport \{ ([\d, ]+) \} accept", line):
            key = "public" if "saddr" not in line else comment
            rules.setdefault(key, set()).update(int(port) for port in match[1].split(", "))
    return rules


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, set[int]]]:
    return rule_sets(tmp_path_factory.mktemp("firewall"))


def test_no_inventory_names_a_service_port_for_the_firewall() -> None:
    for group_vars in (ROOT / "inventory").glob("*/group_vars/**/*.yml"):
        values = yaml.safe_load(group_vars.read_text()) or {}
        assert not {"firewall_public_tcp_ports", "firewall_restricted_tcp_ports"} & set(values), group_vars


INVENTORY = yaml.safe_load((ROOT / "inventory/production/group_vars/all.yml").read_text())


def port_of(variable: str) -> int:
    """The port of an [ADDRESS]:PORT variable of the inventory's all.yml."""
    return int(INVENTORY[variable].rsplit(":", 1)[1])


def test_gateways_admit_their_ports_from_the_proxies_nrpe_and_metrics_from_monitoring(
    production: dict[str, dict[str, set[int]]],
) -> None:
    assert production[GATEWAY] == {
        "public": {22},
        # The public ports, fedmsg-websocket's and the gateway's health check (haproxy's /healthz).
        "from proxies": {
            *INVENTORY["fedmsg_public_ports"],
            INVENTORY["fedmsg_websocket_port"],
            INVENTORY["fedmsg_gateway_health_port"],
        },
        # The other gateways: each back-fills its catch-up window from the others' /raw.
        "from busgateway": {INVENTORY["fedmsg_websocket_port"]},
        # NRPE, and both daemons' metrics for Prometheus: the monitoring hosts only, never the proxies.
        "from monitoring": {
            NRPE_PORT,
            port_of("fedmsg_gateway_metrics"),
            port_of("fedmsg_websocket_metrics"),
        },
    }


def test_proxies_open_both_streams_to_everyone_and_monitoring_ports_to_monitoring(
    production: dict[str, dict[str, set[int]]],
) -> None:
    assert production[PROXY] == {
        "public": {9940, 9939, 22},
        # NRPE, the admin address (haproxy's exporter) and the sessions exporter.
        "from monitoring": {
            NRPE_PORT,
            port_of("haproxy_stats_bind"),
            INVENTORY["nagios_nrpe_haproxy_sessions_metrics_port"],
        },
    }


def test_the_proxy_opens_what_its_variables_say(tmp_path: Path) -> None:
    extra = {
        "haproxy_websocket_enabled": False,
        "haproxy_stats_bind": ":8405",
        "haproxy_stats_from_groups": ["monitoring"],
        "nagios_nrpe_haproxy_sessions_metrics_port": 0,
    }
    assert rule_sets(tmp_path, extra)[PROXY] == {"public": {9940, 22}, "from monitoring": {NRPE_PORT, 8405}}


def sources_by_port(rule_set: str) -> dict[int, set[str]]:
    """port -> the source addresses a rule admits to it (rules open to everyone left out)."""
    sources: dict[int, set[str]] = {}
    for line in rule_set.splitlines():
        if match := re.match(r"\s*ip6? saddr \{ ([^}]*) \} tcp dport \{ ([\d, ]+) \} accept", line):
            for port in match[2].split(", "):
                sources.setdefault(int(port), set()).update(match[1].split(", "))
    return sources


def test_gateways_admit_the_source_addresses_haproxy_connects_from(tmp_path: Path) -> None:
    # Set for the proxy alone, as an inventory's host_vars would: haproxy binds each server line's
    # connections and health checks to these, so the gateways must admit them.
    extra_sources = ["198.51.100.1", "198.51.100.2"]
    written = written_rule_sets(
        tmp_path, host_vars={PROXY: {"haproxy_fedmsg_source_addresses": extra_sources}}
    )
    sources = sources_by_port(written[GATEWAY])
    for port in [*INVENTORY["fedmsg_public_ports"], INVENTORY["fedmsg_gateway_health_port"]]:
        assert set(extra_sources) <= sources[port], (port, sources[port])
    # The browser stream's servers have no `source`: haproxy connects from the proxy's own address.
    assert not set(extra_sources) & sources[INVENTORY["fedmsg_websocket_port"]]
    assert not set(extra_sources) & sources[NRPE_PORT]
