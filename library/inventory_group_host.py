#!/usr/bin/python
# GNU General Public License v2.0 or later (see pyproject.toml)
"""Ansible module: add a host to (or remove it from) a group of a YAML inventory, editing lines in place."""

# ruff: noqa: E402 - Ansible's module checks want every import below DOCUMENTATION/EXAMPLES/RETURN

from __future__ import annotations

DOCUMENTATION = r"""
---
module: inventory_group_host
short_description: Add a host to a group of a YAML inventory file, keeping its comments and layout
description:
  - Edits an Ansible YAML inventory (C(hosts.yml)) as text so that comments, order and layout stay as
    the operator wrote them; only the one line C(<host>:) is inserted into or removed from the
    C(hosts:) block of the group.
  - The group must already be defined under C(all.children) with a C(hosts:) key. The result is parsed
    again and the module fails, writing nothing, unless it is the same inventory with exactly that
    one change.
  - Runs where the inventory lives (the controller, with C(delegate_to: localhost)), with the Python
    standard library and PyYAML, which Ansible itself requires.
options:
  path:
    description: The YAML inventory file.
    type: path
    required: true
  group:
    description: Name of the group, a child of C(all).
    type: str
    required: true
  host:
    description: Inventory name of the host.
    type: str
    required: true
  state:
    description: V(present) adds the host to the group, V(absent) removes it from the group.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode and diff mode.
  - Hosts given variables inline in the group (C(host: {var: value}) or indented lines below it) are
    kept as they are; V(absent) refuses to remove such a host, whose variables would be lost.
author:
  - fedmsg-gateway bundle maintainers
"""

EXAMPLES = r"""
- name: Add the new gateway to the busgateway group of the inventory in use
  inventory_group_host:
    path: "{{ inventory_dir }}/hosts.yml"
    group: busgateway
    host: busgateway02.iad2.fedoraproject.org
  delegate_to: localhost
"""

RETURN = r"""
hosts:
  description: The group's hosts after the change (before it in check mode).
  returned: always
  type: list
  elements: str
  sample: [busgateway01.iad2.fedoraproject.org, busgateway02.iad2.fedoraproject.org]
"""

import copy
import os
import re
import tempfile
from typing import Any

import yaml
from ansible.module_utils.basic import AnsibleModule

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[^\s#:][^:#]*?)\s*:(?P<rest>.*)$")


class InventoryError(Exception):
    """The file is not an inventory this module can edit safely; str() says why."""


def _significant(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#") and stripped != "---"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key(line: str) -> tuple[int, str] | None:
    match = _KEY.match(line.rstrip("\n"))
    if match is None:
        return None
    return len(match["indent"]), match["key"].strip().strip("'\"")


def _key_name(line: str) -> str | None:
    key = _key(line) if _significant(line) else None
    return None if key is None else key[1]


def _inline_value(line: str) -> str:
    """What follows `key:` on its own line, comments removed ("" for a block)."""
    match = _KEY.match(line.rstrip("\n"))
    return "" if match is None else match["rest"].split("#", 1)[0].strip()


def _block_end(lines: list[str], start: int) -> int:
    """Index after the last line nested under lines[start] (blank lines and comments in between belong
    to the block only if a nested line follows them)."""
    base = _indent(lines[start])
    end = start + 1
    for index in range(start + 1, len(lines)):
        if not _significant(lines[index]):
            continue
        if _indent(lines[index]) <= base:
            break
        end = index + 1
    return end


def _find_child(lines: list[str], start: int, end: int, name: str) -> int:
    """Index of the key line `name:` directly nested in lines[start] (one indentation level deeper)."""
    level = None
    for index in range(start + 1, end):
        if not _significant(lines[index]):
            continue
        indent = _indent(lines[index])
        if level is None:
            level = indent
        if indent != level:
            continue
        key = _key(lines[index])
        if key is not None and key[1] == name:
            return index
    raise InventoryError(f"no '{name}:' under line {start + 1} ({lines[start].strip()})")


def _group_hosts(data: object, group: str) -> dict[str, Any]:
    try:
        group_data = data["all"]["children"][group]  # type: ignore[index]
    except (KeyError, TypeError):
        raise InventoryError(f"group '{group}' is not defined under all.children") from None
    if not isinstance(group_data, dict) or "hosts" not in group_data:
        raise InventoryError(f"group '{group}' has no 'hosts:' key")
    hosts = group_data["hosts"]
    if hosts is None:
        return {}
    if not isinstance(hosts, dict):
        raise InventoryError(f"'hosts' of group '{group}' is not a mapping")
    return hosts


def edit(text: str, group: str, host: str, state: str) -> tuple[str, list[str]]:
    """Return the new text and the group's hosts before the change."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InventoryError(f"not valid YAML: {exc}") from None
    hosts = _group_hosts(data, group)
    before = list(hosts)
    if (state == "present") == (host in hosts):
        return text, before
    if state == "absent" and hosts[host] is not None:
        raise InventoryError(f"{host} has variables in group '{group}'; remove it by hand")

    lines = text.splitlines(keepends=True)
    top = next(i for i, line in enumerate(lines) if _key(line) == (0, "all"))
    children = _find_child(lines, top, _block_end(lines, top), "children")
    group_line = _find_child(lines, children, _block_end(lines, children), group)
    hosts_line = _find_child(lines, group_line, _block_end(lines, group_line), "hosts")
    if _inline_value(lines[hosts_line]):
        raise InventoryError(f"'hosts:' of group '{group}' is written inline; write one host per line")
    end = _block_end(lines, hosts_line)
    if state == "present":
        entries = [i for i in range(hosts_line + 1, end) if _significant(lines[i])]
        indent = _indent(lines[entries[0]]) if entries else _indent(lines[hosts_line]) + 2
        if end and not lines[end - 1].endswith("\n"):
            lines[end - 1] += "\n"
        lines.insert(end, f"{' ' * indent}{host}:\n")
    else:
        index = next(i for i in range(hosts_line + 1, end) if _key_name(lines[i]) == host)
        del lines[index]
    new_text = "".join(lines)

    _check_only_change(data, new_text, group, host, state)
    return new_text, before


def _check_only_change(data: Any, new_text: str, group: str, host: str, state: str) -> None:  # noqa: ANN401 - parsed YAML
    """Raise unless new_text parses to data with exactly the one host added to or removed from group."""
    expected = copy.deepcopy(data)
    group_data = expected["all"]["children"][group]
    if state == "present":
        group_data["hosts"] = {**(group_data["hosts"] or {}), host: None}
    else:
        del group_data["hosts"][host]
        group_data["hosts"] = group_data["hosts"] or None
    try:
        result = yaml.safe_load(new_text)
    except yaml.YAMLError as exc:
        raise InventoryError(f"the edit would not be valid YAML ({exc}); nothing written") from None
    if result != expected:
        raise InventoryError("the edit would change more than the one host line; nothing written")


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".inventory-")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "group": {"type": "str", "required": True},
            "host": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    path, group, host, state = (module.params[k] for k in ("path", "group", "host", "state"))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", host):
        module.fail_json(msg=f"host '{host}' is not a plain inventory host name")
    try:
        with open(path) as stream:
            text = stream.read()
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {exc.strerror}")
    try:
        new_text, before = edit(text, group, host, state)
    except InventoryError as exc:
        module.fail_json(msg=f"{path}: {exc}")
    changed = new_text != text
    after = [h for h in before if h != host] + ([host] if state == "present" and host not in before else [])
    if changed and not module.check_mode:
        write_atomically(path, new_text)
    module.exit_json(
        changed=changed,
        hosts=before if module.check_mode else after,
        diff={"before": text, "after": new_text, "before_header": path, "after_header": path},
    )


if __name__ == "__main__":
    main()
