"""playbooks/add_gateway_host.yml edited the operator's inventory (the scratch copy) as documented."""

import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import SCRATCH_INVENTORY
from kit.bundle import PROJECT
from kit.scenario import SCENARIO_DIR
from testinfra.host import Host

testinfra_hosts = ["podman://busgateway02"]


def test_hosts_file_gained_exactly_the_new_gateway() -> None:
    seed = (SCENARIO_DIR / "inventory" / "hosts.yml").read_text().splitlines()
    edited = (SCRATCH_INVENTORY / "hosts.yml").read_text().splitlines()
    assert [line for line in edited if line not in seed] == ["        busgateway02:"]
    assert len(edited) == len(seed) + 1
    data = yaml.safe_load("\n".join(edited))
    assert list(data["all"]["children"]["busgateway"]["hosts"]) == ["busgateway01", "busgateway02"]


def test_ansible_reads_the_edited_inventory() -> None:
    ansible_inventory = Path(sys.executable).parent / "ansible-inventory"
    graph = subprocess.run(
        [str(ansible_inventory), "-i", str(SCRATCH_INVENTORY / "hosts.yml"), "--graph", "busgateway"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
    ).stdout
    assert "busgateway01" in graph
    assert "busgateway02" in graph


def test_new_host_vars_were_pressed_from_the_template() -> None:
    pressed = (SCRATCH_INVENTORY / "host_vars" / "busgateway02.yml").read_text()
    assert pressed.startswith("---\n# busgateway02: host-specific settings only")
    # The template restates no role default: a new gateway starts with nothing of its own.
    template = (PROJECT / "templates" / "busgateway-host_vars.yml.j2").read_text()
    # (Jinja may drop the file's final newline: compare the lines.)
    assert pressed.splitlines() == template.replace("{{ new_host }}", "busgateway02").splitlines()
    assert yaml.safe_load(pressed) is None


def test_new_gateway_serves_every_configured_port(host: Host, ports: list[int]) -> None:
    assert host.service("fedmsg-gateway").is_running
    assert host.service("fedmsg-gateway").is_enabled
    for port in ports:
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
