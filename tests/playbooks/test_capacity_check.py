"""The haproxy role's capacity check, run by ansible on the real production and staging inventories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ansible_json
import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).with_name("capacity.yml")
CAPACITY_TASK = "haproxy : Check the proxy-to-gateway paths can hold haproxy_fedmsg_maxconn sessions"


def run(inventory: str, tmp_path: Path, extra_vars: dict[str, object] | None = None) -> list[dict[str, Any]]:
    """Run the playbook; return every task result as {task, host, result}."""
    command = ["ansible-playbook", "-i", str(ROOT / "inventory" / inventory), str(PLAYBOOK)]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    output = ansible_json.ansible_json(command, tmp_path)
    return [
        {"task": task["task"]["name"], "host": host, "result": outcome}
        for play in output["plays"]
        for task in play["tasks"]
        for host, outcome in task["hosts"].items()
    ]


def capacity_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [r["result"] for r in results if r["task"] == CAPACITY_TASK]
    assert found, f"the capacity check did not run: {[r['task'] for r in results]}"
    return found


@pytest.mark.parametrize("inventory", ["production", "staging"])
def test_inventory_holds_160000_sessions_per_proxy(inventory: str, tmp_path: Path) -> None:
    results = capacity_results(run(inventory, tmp_path))
    assert len(results) == 3  # every proxy of the inventory
    for result in results:
        assert not result.get("failed"), result.get("msg")
        # 1 gateway x 4 ports x 55536 ports of "10000 65535".
        assert result["msg"] == "4 path(s) x 55536 ports = 222144 sessions >= haproxy_fedmsg_maxconn 160000"


def test_one_port_fails_and_says_what_to_add(tmp_path: Path) -> None:
    results = capacity_results(run("production", tmp_path, {"fedmsg_public_ports": [9940]}))
    message = results[0]["msg"]
    assert results[0]["failed"] is True
    assert "haproxy_fedmsg_maxconn (160000) exceeds" in message
    assert "1 host(s) of group 'busgateway' x 1 port(s)" in message
    assert "= 55536 sessions" in message
    assert "3 path(s) are needed: add 2 more" in message


def test_kernel_default_port_range_is_not_enough_for_four_ports(tmp_path: Path) -> None:
    results = capacity_results(run("production", tmp_path, {"haproxy_ip_local_port_range": "32768 60999"}))
    assert results[0]["failed"] is True
    assert "x 28232 ephemeral ports each" in results[0]["msg"]
    assert "= 112928 sessions" in results[0]["msg"]


def test_source_addresses_multiply_the_paths(tmp_path: Path) -> None:
    extra = {
        "fedmsg_public_ports": [9940, 9942],
        "haproxy_fedmsg_source_addresses": ["192.0.2.1", "192.0.2.2"],
    }
    results = capacity_results(run("production", tmp_path, extra))
    assert not results[0].get("failed"), results[0].get("msg")
    assert results[0]["msg"].startswith("4 path(s) x 55536 ports = 222144 sessions")


def test_malformed_port_range_is_named(tmp_path: Path) -> None:
    results = run("production", tmp_path, {"haproxy_ip_local_port_range": "60999 32768"})
    failed = [r["result"] for r in results if r["result"].get("failed")]
    assert failed
    assert "haproxy_ip_local_port_range must be" in failed[0]["msg"]


def test_whole_role_stops_at_the_capacity_check_before_any_change(tmp_path: Path) -> None:
    extra = {
        "capacity_whole_role": True,
        "haproxy_fedmsg_backend_ports": [9940],
        "haproxy_stats_password": "unused",
        # Only the raw stream: production's certificate is in its vault, and capacity is the subject.
        "haproxy_websocket_enabled": False,
        "haproxy_websocket_tls_certificate": "unused",
        "haproxy_websocket_tls_key": "unused",
    }
    results = [r for r in run("production", tmp_path, extra) if r["host"] == "localhost"]
    ran = [r["task"] for r in results if not r["result"].get("skipped")]
    assert ran[-1] == CAPACITY_TASK
    assert results[-1]["result"]["failed"] is True
    # Only checks ran before it (argument_specs, then the role's asserts): nothing installed or written.
    checks = [task for task in ran if task.startswith(("haproxy : Check", "haproxy : Validating arguments"))]
    assert ran == ["Run the haproxy role", *checks], ran
    assert not any(r["result"].get("changed") for r in results)
