"""Prometheus on noc01: every target of the inventory scraped, and a stopped gateway alerting.

What is asserted is Prometheus's own view, read from its HTTP API on noc01 (the scenario scrapes and
evaluates every second and fires alerts after 2 s: molecule.yml).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import yaml
from kit.bundle import RAW_PROXY, role_default
from kit.hosts import wait_until_gateways_up
from kit.scenario import SCENARIO_DIR
from testinfra.host import Host

testinfra_hosts = ["podman://noc01"]

API = "http://127.0.0.1:9090/api/v1/"
# The scrape jobs the prometheus role generates for each inventory group's hosts, on the ports of its
# defaults (the scenario's targets serve there).
JOBS = {
    "proxies": {
        "haproxy": role_default("prometheus", "prometheus_haproxy_port"),
        "fedmsg_haproxy_sessions": role_default("prometheus", "prometheus_haproxy_sessions_port"),
    },
    "busgateway": {
        "fedmsg_gateway": role_default("prometheus", "prometheus_gateway_metrics_port"),
        "fedmsg_websocket": role_default("prometheus", "prometheus_websocket_metrics_port"),
    },
}
GET = (
    "import sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=10) as answer:\n"
    "    sys.stdout.write(answer.read().decode())\n"
)


def api(host: Host, path: str, **query: str) -> Any:  # noqa: ANN401 - the API's JSON
    url = API + path + ("?" + urllib.parse.urlencode(query) if query else "")
    answer = json.loads(host.check_output("python3 -c %s %s", GET, url))
    assert answer["status"] == "success", answer
    return answer["data"]


def eventually(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:  # noqa: ANN401
    """probe()'s first truthy result, retried every half second until `timeout`."""
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.5)
    return result


def expected_targets() -> set[tuple[str, str]]:
    """(job, instance) for every host of the scenario's groups, and Prometheus itself."""
    platforms = yaml.safe_load((SCENARIO_DIR / "molecule.yml").read_text())["platforms"]
    targets = {("prometheus", "127.0.0.1:9090")}
    for platform in platforms:
        for group in platform.get("groups", []):
            targets |= {(job, f"{platform['name']}:{port}") for job, port in JOBS.get(group, {}).items()}
    return targets


def firing(host: Host, alertname: str, **labels: str) -> list[dict[str, Any]]:
    return [
        alert
        for alert in api(host, "alerts")["alerts"]
        if alert["labels"]["alertname"] == alertname
        and alert["state"] == "firing"
        and all(alert["labels"].get(key) == value for key, value in labels.items())
    ]


def test_prometheus_never_listened_beyond_its_address(host: Host) -> None:
    """Every start of Prometheus on noc01, the package's first one at install included, listened on
    prometheus_web_listen_address only (Debian's empty ARGS would have meant every address)."""
    journal = host.check_output("journalctl --quiet -u prometheus -o cat")
    starts = re.findall(r'msg="Start listening for connections" address=(\S+)', journal)
    # Two at least: the package's start at install, then the role's restart (its handler ran once).
    assert len(starts) >= 2, journal[-3000:]
    assert set(starts) == {role_default("prometheus", "prometheus_web_listen_address")}, starts


def test_every_target_of_the_inventory_is_up(host: Host) -> None:
    expected = expected_targets()

    def all_up() -> dict[tuple[str, str], float] | None:
        results = api(host, "query", query="up")["result"]
        up = {(r["metric"]["job"], r["metric"]["instance"]): float(r["value"][1]) for r in results}
        return up if set(up) == expected and set(up.values()) == {1.0} else None

    eventually(f"up == 1 for exactly {sorted(expected)}", all_up)
    # The rules the role wrote are loaded, and none of them is broken.
    groups = api(host, "rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 10
    assert {rule["health"] for rule in rules} == {"ok"}


def test_a_stopped_gateway_fires_the_gateway_down_alert(host: Host) -> None:
    gateway = host.get_host("podman://busgateway01")
    proxy = host.get_host("podman://proxy01")
    assert not firing(host, "FedmsgGatewayDown")
    started = time.monotonic()
    gateway.check_output("systemctl stop fedmsg-gateway")
    try:
        # haproxy marks its servers DOWN after 3 failed checks, Prometheus scrapes that, the rule holds 2 s.
        alerts = eventually(
            "FedmsgGatewayDown firing", lambda: firing(host, "FedmsgGatewayDown", proxy=RAW_PROXY)
        )
        fired_after = time.monotonic() - started
        assert {alert["labels"]["server"].split(":")[0] for alert in alerts} == {"busgateway01"}
        assert {alert["labels"]["instance"] for alert in alerts} == {"proxy01:8404"}
        # The daemon's own target stopped answering too.
        eventually(
            "FedmsgTargetDown firing for the gateway",
            lambda: firing(host, "FedmsgTargetDown", job="fedmsg_gateway", instance="busgateway01:9941"),
        )
    finally:
        gateway.check_output("systemctl start fedmsg-gateway")
        wait_until_gateways_up(proxy)
    eventually("FedmsgGatewayDown resolved", lambda: not firing(host, "FedmsgGatewayDown"))
    print(f"FedmsgGatewayDown fired {fired_after:.1f} s after the stop")
