"""Bad input fails before any change, naming the variable, and the running services keep going."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from testinfra.host import Host

testinfra_hosts = ["podman://proxy01", "podman://busgateway01"]

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
INVENTORY = (
    Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent if "MOLECULE_INVENTORY_FILE" in os.environ else None
)

# (playbook, extra vars, what the error must name). The first is production's wiring with no vault.
CASES = {
    "proxy01": [
        (
            "proxies.yml",
            {"haproxy_stats_password": "{{ vault_haproxy_stats_password }}"},
            "vault_haproxy_stats_password",
        ),
        ("proxies.yml", {"haproxy_fedmsg_maxconn": 8000}, "haproxy_global_maxconn"),
        ("proxies.yml", {"haproxy_nofile": 1024}, "haproxy_nofile"),
    ],
    "busgateway01": [
        ("busgateway.yml", {"fedmsg_gateway_send_hwm": "lots"}, "fedmsg_gateway_send_hwm"),
        ("busgateway.yml", {"fedmsg_gateway_publishers": []}, "fedmsg_gateway_publishers"),
        ("busgateway.yml", {"fedmsg_gateway_ports": [70000]}, "fedmsg_gateway_ports"),
    ],
}
WATCHED = {
    "proxy01": ("haproxy", ["/etc/haproxy/haproxy.cfg", "/etc/systemd/system/haproxy.service.d/nofile.conf"]),
    "busgateway01": (
        "fedmsg-gateway",
        ["/etc/fedmsg-gateway/gateway.toml", "/etc/systemd/system/fedmsg-gateway.service.d/nofile.conf"],
    ),
}


def snapshot(host: Host, service: str, paths: list[str]) -> tuple:
    main_pid = host.check_output("systemctl show --property MainPID --value %s", service)
    return (main_pid, *(host.file(path).sha256sum for path in paths))


@pytest.mark.skipif(INVENTORY is None, reason="needs Molecule's inventory (runs under `molecule verify`)")
def test_a_wrong_variable_fails_before_any_change(host: Host) -> None:
    name = host.backend.get_hostname()
    service, paths = WATCHED[name]
    before = snapshot(host, service, paths)
    for playbook, extra_vars, named in CASES[name]:
        run = subprocess.run(
            [
                "ansible-playbook",
                "-i",
                str(INVENTORY),
                "--limit",
                name,
                "-e",
                json.dumps(extra_vars),
                str(PROJECT / "playbooks" / playbook),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = run.stdout + run.stderr  # fatal: lines go to stderr
        assert run.returncode != 0, f"{playbook} with {extra_vars} succeeded"
        assert named in output, f"the failure does not name {named}:\n{output[-3000:]}"
        assert "changed=0" in output, output[-3000:]
    assert snapshot(host, service, paths) == before
