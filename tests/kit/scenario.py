"""A Molecule scenario as its verifier sees it: its configured values, playbooks run as operators do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kit.bundle import PROJECT

# Set by `molecule verify`; the fallbacks keep the modules importable elsewhere (collection, linters).
SCENARIO_DIR = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path.cwd()))
EPHEMERAL_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
MOLECULE_INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE")
needs_molecule_inventory = pytest.mark.skipif(
    MOLECULE_INVENTORY is None, reason="needs Molecule's inventory (runs under `molecule verify`)"
)


def scenario_group_vars() -> dict[str, dict[str, Any]]:
    """The group_vars of the scenario's molecule.yml: what the running system must show."""
    with (SCENARIO_DIR / "molecule.yml").open() as config:
        return yaml.safe_load(config)["provisioner"]["inventory"]["group_vars"]


@pytest.fixture(scope="session")
def group_vars() -> dict[str, dict[str, Any]]:
    """The values the scenario configured (its molecule.yml's group_vars)."""
    return scenario_group_vars()


def ansible_playbook(
    playbook: Path,
    *args: str,
    inventories: list[Path],
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> tuple[int, dict[str, Any]]:
    """Run a playbook of the bundle as an operator does (the project's ansible.cfg, from its directory).

    Returns the exit code and the JSON callback's report (plays, tasks, per-host results, stats).
    """
    environment = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    environment.pop("ANSIBLE_CONFIG", None)  # the project's ansible.cfg (cwd), as for operators
    environment.update(env or {})
    command = [str(Path(sys.executable).parent / "ansible-playbook")]
    for inventory in inventories:
        command += ["-i", str(inventory)]
    command += [*args, str(playbook)]
    run = subprocess.run(
        command, cwd=PROJECT, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )
    try:
        return run.returncode, json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible printed no JSON (exit {run.returncode}): {run.stdout[-2000:]}{run.stderr}")


def site_playbook(*args: str, extra_inventory: Path | None = None) -> tuple[int, dict[str, Any]]:
    """playbooks/site.yml on Molecule's inventory (plus EXTRA_INVENTORY)."""
    assert MOLECULE_INVENTORY is not None, "needs Molecule's inventory"
    inventories = [Path(MOLECULE_INVENTORY).parent, *([extra_inventory] if extra_inventory else [])]
    return ansible_playbook(PROJECT / "playbooks" / "site.yml", *args, inventories=inventories)


def task_results(report: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(task name, host, result) for every task result of a JSON callback report."""
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                yield task["task"]["name"], host, result
