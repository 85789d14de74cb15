"""The prometheus role's alert rules, rendered by Ansible with its defaults, under `promtool test rules`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import ansible_json

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "prometheus"
TESTS = Path(__file__).with_name("fedmsg-gateway-alerts.test.yml")
# Debian's prometheus package, which ./dev installs: what the monitoring hosts validate the rules with.
PROMTOOL = "/usr/bin/promtool"


def render_rules(tmp_path: Path) -> Path:
    """The rules file as the role writes it on the monitoring hosts, with its defaults."""
    rules = tmp_path / "fedmsg-gateway-alerts.yml"
    template = ROLE / "templates" / "fedmsg-gateway-alerts.yml.j2"
    report = ansible_json.ansible_json(
        [
            "ansible",
            "localhost",
            "--connection",
            "local",
            "--extra-vars",
            f"@{ROLE / 'defaults' / 'main.yml'}",
            "--module-name",
            "ansible.builtin.template",
            "--args",
            f"src={template} dest={rules}",
        ],
        tmp_path,
    )
    assert rules.is_file(), report
    return rules


def test_rules_are_valid_and_pass_their_unit_tests(tmp_path: Path) -> None:
    rules = render_rules(tmp_path)
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 10 rules found" in check.stdout
    shutil.copy(TESTS, tmp_path)
    result = subprocess.run(
        [PROMTOOL, "test", "rules", TESTS.name], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
