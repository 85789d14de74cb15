"""The inventories' group_vars: every name is a role's variable or something the bundle reads.

A name with a role's prefix that the role does not declare (meta/argument_specs.yml) looks like a
setting of that role but changes nothing; a name of the inventory's own that nothing reads is dead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(
    path.name for path in (ROOT / "roles").iterdir() if (path / "meta/argument_specs.yml").exists()
)
GROUP_VARS = sorted((ROOT / "inventory").glob("*/group_vars/**/*.yml"))


def role_options(role: str) -> set[str]:
    specs = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]
    return {option for entry in specs.values() for option in entry.get("options", {})}


def owning_role(name: str) -> str | None:
    """The role whose prefix the name has (the longest: fedmsg_gateway before fedmsg)."""
    matches = [role for role in ROLES if name.startswith(f"{role}_")]
    return max(matches, key=len) if matches else None


def readers_text(inventory: Path) -> str:
    """Everything that may read an inventory's own variables: its files, the playbooks and roles."""
    files = [*inventory.rglob("*.yml"), *(ROOT / "playbooks").rglob("*.yml"), *(ROOT / "roles").rglob("*")]
    files += [*(ROOT / "templates").rglob("*")]
    # Not the bytecode the tests leave beside the NRPE plugins (they import haproxy_cli from there).
    return "\n".join(path.read_text() for path in files if path.is_file() and path.suffix != ".pyc")


@pytest.mark.parametrize("group_vars", GROUP_VARS, ids=lambda path: str(path.relative_to(ROOT / "inventory")))
def test_every_name_is_a_role_variable_or_read(group_vars: Path) -> None:
    inventory = group_vars.relative_to(ROOT / "inventory").parts[0]
    readers = readers_text(ROOT / "inventory" / inventory)
    for name in yaml.safe_load(group_vars.read_text()) or {}:
        if role := owning_role(name):
            assert name in role_options(role), (
                f"{name} looks like a variable of role {role}, which has none such"
            )
        else:
            # Read where a template names it ({{ name }}, {{ name | ... }}, name in an expression).
            uses = re.findall(rf"{{{{[^}}]*\b{name}\b", readers)
            assert uses, f"{name} ({group_vars.name}) is read by nothing"
