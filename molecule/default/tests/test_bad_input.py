"""Bad input fails before any change, naming exactly the variable that is wrong.

The real site playbook runs against the whole chain plus fresh01, a container no play has ever
touched, put into the case's group by a scratch inventory beside Molecule's. Every run must fail in
the variable checks that come first (playbooks/validate.yml) naming only the wrong variable, report
nothing changed, leave fresh01 as it was created (no package, no file, no service) and the converged
hosts' services running with the same PID and configuration.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from kit.bundle import PROJECT
from kit.scenario import needs_molecule_inventory, site_playbook, task_results
from testinfra.host import Host

FRESH = "fresh01"


def production_vault_reference() -> tuple[str, str]:
    """haproxy_stats_password as production's inventory wires it, and the vault variable it names."""
    group_vars = yaml.safe_load((PROJECT / "inventory/production/group_vars/proxies/main.yml").read_text())
    reference = group_vars["haproxy_stats_password"]
    (vault_variable,) = re.findall(r"{{\s*(\w+)\s*}}", reference)
    return reference, vault_variable


VAULT_REFERENCE, VAULT_VARIABLE = production_vault_reference()
# (group fresh01 joins, extra vars, the one variable the failure must name). The first is production's
# wiring without its vault.
CASES = [
    ("proxies", {"haproxy_stats_password": VAULT_REFERENCE}, VAULT_VARIABLE),
    ("proxies", {"haproxy_fedmsg_maxconn": 8000}, "haproxy_global_maxconn"),
    ("proxies", {"haproxy_nofile": 1024}, "haproxy_nofile"),
    ("busgateway", {"fedmsg_gateway_send_hwm": "lots"}, "fedmsg_gateway_send_hwm"),
    ("busgateway", {"fedmsg_gateway_publishers": []}, "fedmsg_gateway_publishers"),
    ("busgateway", {"fedmsg_gateway_ports": [70000]}, "fedmsg_gateway_ports"),
    ("busgateway", {"fedmsg_package_deb": "/nonexistent/fedmsg-gateway.deb"}, "fedmsg_package_deb"),
    ("busgateway", {"busgateway_nofile": 100}, "nofile_limits_nofile"),
]
# The converged hosts' services and configuration, which a failed run must leave alone.
WATCHED = {
    "proxy01": ("haproxy", ["/etc/haproxy/haproxy.cfg", "/etc/systemd/system/haproxy.service.d/nofile.conf"]),
    "busgateway01": (
        "fedmsg-gateway",
        [
            "/etc/fedmsg-gateway/gateway.toml",
            "/etc/systemd/system/fedmsg-gateway.service.d/nofile.conf",
            "/etc/systemd/system/fedmsg-gateway.service.d/tuning.conf",
        ],
    ),
}
# Written by the container itself, not by a play: journald, apt's timers, podman's bind mounts.
_SELF_WRITTEN = ("/var/log", "/var/cache", "/var/lib/apt", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
_MARKER = "/run/bad-input-marker"


def fresh_state(fresh: Host) -> dict[str, Any]:
    """What a play would have changed on fresh01: packages, running services, files written."""
    pruned = " -o ".join(f"-path {path}" for path in (*_SELF_WRITTEN, "/root/.ansible"))
    return {
        "packages": fresh.check_output("dpkg-query -W -f '${Package} ${Version}\\n'"),
        "services": fresh.check_output(
            "systemctl list-units --type=service --state=running --plain --no-legend"
        ),
        "written": fresh.check_output(f"find / -xdev \\( {pruned} \\) -prune -o -newer {_MARKER} -print"),
    }


def converged_state() -> dict[str, tuple[str, ...]]:
    state = {}
    for name, (service, paths) in WATCHED.items():
        host = testinfra.get_host(f"podman://{name}")
        main_pid = host.check_output("systemctl show --property MainPID --value %s", service)
        state[name] = (main_pid, *(host.file(path).sha256sum for path in paths))
    return state


def run_site(group: str, extra_vars: dict[str, object], tmp_path: Path) -> dict[str, Any]:
    """playbooks/site.yml with fresh01 in GROUP, which must fail; the JSON callback's report."""
    scratch = tmp_path / "fresh.yml"
    scratch.write_text(yaml.safe_dump({"all": {"children": {group: {"hosts": {FRESH: {}}}}}}))
    returncode, report = site_playbook("-e", json.dumps(extra_vars), extra_inventory=scratch)
    assert returncode != 0, f"site.yml with {extra_vars} succeeded"
    return report


def named_variables(result: dict[str, Any]) -> set[str]:
    """The variables a failed result blames.

    A check's message starts with its variable (every check of the roles' tasks/validate.yml does);
    an argument spec error names its argument; templating names the undefined variable.
    """
    if "results" in result:  # a loop of checks: the items that failed
        return set().union(*(named_variables(item) for item in result["results"] if item.get("failed")))
    text = " ".join([result.get("msg", ""), *result.get("argument_errors", [])])
    if "evaluated_to" in result:
        return {text.split()[0]}
    return set(re.findall(r"argument '(\w+)'", text)) | set(re.findall(r"'(\w+)' is undefined", text))


def failures(report: dict[str, Any]) -> dict[str, tuple[str, set[str]]]:
    """host -> (the task that failed, the variables its result names)."""
    return {
        host: (task, named_variables(result))
        for task, host, result in task_results(report)
        if result.get("failed")
    }


@needs_molecule_inventory
@pytest.mark.parametrize(("group", "extra_vars", "named"), CASES, ids=[case[2] for case in CASES])
def test_a_wrong_variable_fails_before_any_change(
    group: str, extra_vars: dict[str, object], named: str, tmp_path: Path
) -> None:
    fresh = testinfra.get_host(f"podman://{FRESH}")
    fresh.check_output("touch %s", _MARKER)
    before = fresh_state(fresh), converged_state()

    report = run_site(group, extra_vars, tmp_path)

    failed = failures(report)
    assert FRESH in failed, f"{FRESH} did not fail: {failed}"
    for host, (task, variables) in failed.items():
        assert variables == {named}, f"{host} failed in {task!r} naming {variables}, not exactly {named}"
    assert {stats["changed"] for stats in report["stats"].values()} == {0}, report["stats"]
    assert (fresh_state(fresh), converged_state()) == before
