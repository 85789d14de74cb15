"""library/inventory_group_host.py, run by ansible itself on copies of real and edge-case inventories."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import ansible_json
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "inventory" / "production" / "hosts.yml"
NEW_HOST = "busgateway02.iad2.fedoraproject.org"


def run_module(args: dict[str, object], tmp_path: Path, *, check_mode: bool = False) -> dict[str, Any]:
    # Check mode through Ansible, which is what sets it.
    return ansible_json.run_module(
        "inventory_group_host", args, tmp_path, check_mode=check_mode, through_ansible=check_mode
    )


def inventory_groups(path: Path) -> dict[str, list[str]]:
    """Group -> hosts as ansible-inventory itself reads the file."""
    output = subprocess.run(
        [str(ansible_json.BIN / "ansible-inventory"), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "ANSIBLE_HOME": str(path.parent / "ansible-home")},
    ).stdout
    data = json.loads(output)
    return {name: group.get("hosts", []) for name, group in data.items() if name != "_meta"}


@pytest.fixture
def production_copy(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(PRODUCTION.read_text())
    return path


def test_adds_one_line_to_the_group_and_keeps_everything_else(production_copy: Path, tmp_path: Path) -> None:
    before = production_copy.read_text()
    result = run_module({"path": str(production_copy), "group": "busgateway", "host": NEW_HOST}, tmp_path)
    assert result["changed"] is True
    assert NEW_HOST in result["hosts"]
    after = production_copy.read_text()
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == [f"        {NEW_HOST}:"]
    assert len(after.splitlines()) == len(before.splitlines()) + 1
    # Comments survive: the file is edited as text, not re-dumped.
    assert [line for line in after.splitlines() if line.startswith("#")] == [
        line for line in before.splitlines() if line.startswith("#")
    ]
    groups = inventory_groups(production_copy)
    assert NEW_HOST in groups["busgateway"]
    assert NEW_HOST not in groups.get("proxies", [])


def test_second_run_changes_nothing(production_copy: Path, tmp_path: Path) -> None:
    args = {"path": str(production_copy), "group": "busgateway", "host": NEW_HOST}
    run_module(args, tmp_path)
    text = production_copy.read_text()
    result = run_module(args, tmp_path)
    assert result["changed"] is False
    assert production_copy.read_text() == text


def test_check_mode_reports_the_change_and_writes_nothing(production_copy: Path, tmp_path: Path) -> None:
    before = production_copy.read_text()
    args = {"path": str(production_copy), "group": "busgateway", "host": NEW_HOST}
    result = run_module(args, tmp_path, check_mode=True)
    assert result["changed"] is True
    assert production_copy.read_text() == before


def test_absent_removes_the_host_again(production_copy: Path, tmp_path: Path) -> None:
    before = production_copy.read_text()
    args = {"path": str(production_copy), "group": "busgateway", "host": NEW_HOST}
    run_module(args, tmp_path)
    result = run_module({**args, "state": "absent"}, tmp_path)
    assert result["changed"] is True
    assert production_copy.read_text() == before
    assert run_module({**args, "state": "absent"}, tmp_path)["changed"] is False


def test_unknown_group_fails_and_writes_nothing(production_copy: Path, tmp_path: Path) -> None:
    before = production_copy.read_text()
    result = run_module({"path": str(production_copy), "group": "gateways", "host": NEW_HOST}, tmp_path)
    assert result.get("failed") is True
    assert "group 'gateways' is not defined" in result["msg"]
    assert production_copy.read_text() == before


def test_empty_hosts_block_gets_its_first_host(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text(
        "---\nall:\n  children:\n    busgateway:\n      hosts:\n    proxies:\n      hosts:\n        p1:\n"
    )
    result = run_module({"path": str(path), "group": "busgateway", "host": "gw1"}, tmp_path)
    assert result["changed"] is True
    assert yaml.safe_load(path.read_text())["all"]["children"]["busgateway"]["hosts"] == {"gw1": None}
    assert yaml.safe_load(path.read_text())["all"]["children"]["proxies"]["hosts"] == {"p1": None}


def test_host_with_nested_variables_is_kept_and_new_host_goes_after_it(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text(
        "all:\n  children:\n    busgateway:\n      hosts:\n        gw1:\n          ansible_host: 192.0.2.1\n"
        "        # the second one\n    proxies:\n      hosts:\n        p1:\n"
    )
    run_module({"path": str(path), "group": "busgateway", "host": "gw2"}, tmp_path)
    data = yaml.safe_load(path.read_text())
    hosts = data["all"]["children"]["busgateway"]["hosts"]
    assert hosts == {"gw1": {"ansible_host": "192.0.2.1"}, "gw2": None}
    args = {"path": str(path), "group": "busgateway", "host": "gw1", "state": "absent"}
    result = run_module(args, tmp_path)
    assert result.get("failed") is True
    assert "has variables" in result["msg"]


def test_inline_hosts_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    text = "all:\n  children:\n    busgateway:\n      hosts: {gw1: null}\n"
    path.write_text(text)
    result = run_module({"path": str(path), "group": "busgateway", "host": "gw2"}, tmp_path)
    assert result.get("failed") is True
    assert "inline" in result["msg"]
    assert path.read_text() == text


def test_host_name_with_yaml_syntax_is_refused(production_copy: Path, tmp_path: Path) -> None:
    result = run_module(
        {"path": str(production_copy), "group": "busgateway", "host": "gw: {evil: 1}"}, tmp_path
    )
    assert result.get("failed") is True
    assert "not a plain inventory host name" in result["msg"]
