"""Run ansible or ansible-playbook as the bundle's users do and read the JSON callback's report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# As ansible.cfg says: library/'s modules import ansible.module_utils.haproxy_cli from here.
MODULE_UTILS = ROOT / "roles" / "nagios_nrpe" / "files"
# What Ansible's zip gives a module run directly: the bundle's module_utils under ansible.module_utils.
_RUN_MODULE = (
    "import runpy, sys, ansible.module_utils as utils; "
    f"utils.__path__.append({str(MODULE_UTILS)!r}); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)
# For playbooks run on this machine against the real inventories (tests/playbooks): what the
# inventory's vault would hold (the proxies' checks need the variables to exist), and a local
# connection, so that no host of the inventory is contacted.
INVENTORY_VAULT = {
    "vault_haproxy_stats_password": "x",
    "vault_haproxy_websocket_tls_certificate": "-----BEGIN CERTIFICATE-----\nx\n",
    "vault_haproxy_websocket_tls_key": "-----BEGIN PRIVATE KEY-----\nx\n",
}
LOCAL = {
    "ansible_connection": "local",
    "ansible_become": False,
    "ansible_python_interpreter": "/usr/bin/python3",
}


def ansible_json(
    command: list[str], tmp_path: Path, *, extra_env: dict[str, str] | None = None, timeout: int = 180
) -> dict[str, Any]:
    """Run COMMAND (`ansible ...` or `ansible-playbook ...`) with the bundle's roles and modules.

    It runs from tmp_path, so no ansible.cfg applies: only the environment below configures ansible.
    Fails the test when ansible printed no JSON report.
    """
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_LIBRARY": str(ROOT / "library"),
        "ANSIBLE_MODULE_UTILS": str(MODULE_UTILS),
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        **(extra_env or {}),
    }
    executable, *arguments = command
    result = subprocess.run(
        [str(BIN / executable), *arguments],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible printed no JSON (exit {result.returncode}): {result.stdout}{result.stderr}")


def run_module(
    module: str,
    args: dict[str, object],
    tmp_path: Path,
    *,
    check_mode: bool = False,
    through_ansible: bool = False,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run MODULE from library/ on this machine and return its result.

    By default the module's file runs directly with its arguments in a file, as Ansible's module
    testing guide does (`python library/MODULE.py args.json`, with the bundle's module_utils
    importable as Ansible's zip makes them): the same code on the same host, and the
    coverage gate measures it (Ansible would run it from a zip in a temporary directory).
    through_ansible runs it as an ad-hoc `ansible localhost -m MODULE` task instead, to prove Ansible
    finds and runs it from library/ (EXTRA_ENV configures that ansible, e.g. the interpreter).
    """
    if through_ansible:
        command = ["ansible", "localhost", "-c", "local", "-m", module, "-a", json.dumps(args)]
        if check_mode:
            command.append("--check")
        report = ansible_json(command, tmp_path, extra_env=extra_env, timeout=120)
        return report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    args_file = tmp_path / f"{module}-args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}))
    result = subprocess.run(
        [sys.executable, "-c", _RUN_MODULE, str(ROOT / "library" / f"{module}.py"), str(args_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{module} printed no JSON (exit {result.returncode}): {result.stdout}{result.stderr}")
