#!/usr/bin/python
# GNU General Public License v2.0 or later (see pyproject.toml)
"""Ansible module: read haproxy's stats socket and set the admin state of a gateway's servers."""

# ruff: noqa: E402 - Ansible's module checks want every import below DOCUMENTATION/EXAMPLES/RETURN

from __future__ import annotations

DOCUMENTATION = r"""
---
module: haproxy_stats
short_description: Query haproxy's stats socket and set servers ready, drain or maint
description:
  - Reads one proxy's session counters (C(show stat)) and its servers' states (C(show servers state))
    from haproxy's stats socket, reading every answer until haproxy closes the connection.
  - With O(state=ready), O(state=drain) or O(state=maint), sends C(set server PROXY/SERVER state X) to
    each selected server that is not already in that admin state, so a second run reports no change.
  - The admin state comes from the C(srv_admin_state) bits of C(show servers state), derived the way
    haproxy derives it. C(maint) when a maintenance bit is set (0x01 forced, 0x02 inherited from a
    tracked server, 0x20 address resolution failure); otherwise C(drain) when a drain bit is set
    (0x08 forced, 0x10 inherited); otherwise C(ready). The C(show stat) status and weight are not used
    for this because haproxy 2.6 still shows a server whose weight was set to 0 as C(UP).
  - Runs on the haproxy host, with the Python standard library only. Reads the sockets with
    C(haproxy_cli), the module_utils file the NRPE plugins share (C(roles/nagios_nrpe/files/), named
    by C(ansible.cfg)), so the module and the checks read haproxy alike.
options:
  socket:
    description:
      - Path of haproxy's stats socket (the haproxy role's C(haproxy_stats_socket); the playbooks pass
        the inventory's C(fedmsg_haproxy_stats_socket)). Changing states needs C(level admin) on it.
    type: path
    required: true
  master_socket:
    description:
      - Path of haproxy's master CLI socket (the haproxy role's C(haproxy_master_socket)).
      - When given, every C(scur) returned is summed over all live workers, the old ones a reload
        left serving their established sessions included; without it, C(scur) is the current
        worker's only and misses every session opened before the last reload.
      - States, weights, C(smax) and C(slim) always come from the current worker (O(socket)).
    type: path
  proxy:
    description:
      - Name of the backend or listen section, for example the raw stream's (the haproxy role's
        C(haproxy_fedmsg_proxy); the playbooks pass the inventory's C(fedmsg_haproxy_raw_proxy)).
    type: str
    required: true
  host:
    description:
      - Selects the servers of O(proxy) named exactly O(host) or starting with O(host) followed by C(:).
        Server lines are named C(<inventory_hostname>:<port>), one per gateway port, so this selects
        every port of one gateway host.
      - Required unless O(state=query); with O(state=query) and no O(host), every server is returned.
    type: str
  state:
    description:
      - V(query) changes nothing.
      - V(ready), V(drain) and V(maint) set the admin state of the servers selected by O(host).
        V(drain) lets established sessions finish but sends no new ones;
        V(maint) also stops health checks and marks the server down.
    type: str
    choices: [query, ready, drain, maint]
    default: query
  timeout:
    description:
      - Seconds haproxy has to answer one reading of the state (with O(master_socket), every
        worker's sessions included), and again each change of a server's state.
    type: float
    default: 5
notes:
  - Supports check mode, reporting which servers would change without sending anything.
  - A server held in maintenance or drain by a tracked server or by DNS resolution cannot be changed
    from the socket; the module then warns that the requested state was not reached.
  - A server weight of 0 is not treated as drain; the weight is returned so it can be checked.
author:
  - fedmsg-gateway bundle maintainers
"""

EXAMPLES = r"""
- name: Drain every port of this gateway on all proxies
  haproxy_stats:
    socket: "{{ fedmsg_haproxy_stats_socket }}"
    proxy: "{{ fedmsg_haproxy_raw_proxy }}"
    host: "{{ inventory_hostname }}"
    state: drain
  delegate_to: "{{ item }}"
  loop: "{{ groups['proxies'] }}"

- name: Wait until no session is left on this gateway
  haproxy_stats:
    socket: "{{ fedmsg_haproxy_stats_socket }}"
    proxy: "{{ fedmsg_haproxy_raw_proxy }}"
    host: "{{ inventory_hostname }}"
  delegate_to: "{{ item }}"
  loop: "{{ groups['proxies'] }}"
  register: haproxy_gateway
  until: haproxy_gateway.servers | map(attribute='scur') | sum == 0
  retries: 60
  delay: 10

- name: Put the gateway back into rotation
  haproxy_stats:
    socket: "{{ fedmsg_haproxy_stats_socket }}"
    proxy: "{{ fedmsg_haproxy_raw_proxy }}"
    host: "{{ inventory_hostname }}"
    state: ready
  delegate_to: "{{ item }}"
  loop: "{{ groups['proxies'] }}"
"""

RETURN = r"""
proxy:
  description: Session counters of O(proxy), from its FRONTEND row, or its BACKEND row if it has no
    frontend. A backend's C(slim) is its C(fullconn), not a session limit.
  returned: always
  type: dict
  contains:
    scur: {description: Current sessions (of every worker with O(master_socket))., type: int}
    smax: {description: Highest session count since haproxy started., type: int}
    slim: {description: Session limit, or null if haproxy reports none., type: int}
    status: {description: C(OPEN) for a frontend, C(UP)/C(DOWN) for a backend., type: str}
  sample: {scur: 12, smax: 40, slim: 6000, status: OPEN}
servers:
  description: The selected servers after any change (before it in check mode), in configuration order.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Server name., type: str}
    status:
      description: Operational status from C(show stat), e.g. C(UP), C(DOWN), C(DRAIN), C(MAINT),
        C(UP 1/3) while a health check transition is in progress.
      type: str
    scur: {description: Current sessions on the server (of every worker with O(master_socket))., type: int}
    weight: {description: Effective weight from C(show stat)., type: int}
    admin_state: {description: "C(ready), C(drain) or C(maint), see the description.", type: str}
    admin_state_bits: {description: Raw C(srv_admin_state) of C(show servers state)., type: int}
  sample:
    - {name: "busgateway01:9940", status: DRAIN, scur: 3, weight: 1, admin_state: drain, admin_state_bits: 8}
changed_servers:
  description: Names of the servers whose admin state was (in check mode, would be) changed.
  returned: always
  type: list
  elements: str
  sample: ["busgateway01:9940"]
"""

import time

from ansible.module_utils.basic import AnsibleModule

# The bundle's one reader of haproxy's sockets, shared with the NRPE plugins: see ansible.cfg.
from ansible.module_utils.haproxy_cli import CliError, every_worker, proxy_rows, query

# srv_admin_state bits (haproxy include/haproxy/server-t.h, enum srv_admin).
ADMIN_MAINT_MASK = 0x01 | 0x02 | 0x20
ADMIN_DRAIN_MASK = 0x08 | 0x10
SERVERS_STATE_VERSION = "1"


def sessions_of_every_worker(master: str, proxy: str, deadline: float) -> dict[str, int]:
    """scur by svname of one proxy, summed over every live worker."""
    totals: dict[str, int] = {}
    for _, (stat_csv,) in every_worker(master, ["show stat"], deadline):
        for name, row in proxy_rows(stat_csv, proxy).items():
            totals[name] = totals.get(name, 0) + (as_int(row["scur"]) or 0)
    return totals


def admin_state(bits: int) -> str:
    if bits & ADMIN_MAINT_MASK:
        return "maint"
    if bits & ADMIN_DRAIN_MASK:
        return "drain"
    return "ready"


def servers_state(path: str, proxy: str, deadline: float) -> list[dict[str, str]]:
    """Rows of `show servers state PROXY`: a format version line, a '# ' header, space-separated rows."""
    lines = query(path, f"show servers state {proxy}", deadline).splitlines()
    if len(lines) < 2 or lines[0] != SERVERS_STATE_VERSION or not lines[1].startswith("# "):
        raise CliError(f"unexpected answer to 'show servers state {proxy}': {lines[:2]!r}")
    header = lines[1][2:].split()
    return [dict(zip(header, line.split(), strict=False)) for line in lines[2:] if line.strip()]


def as_int(value: str) -> int | None:
    return int(value) if value else None


def read_state(
    path: str, proxy: str, timeout: float, master: str | None = None
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The proxy's summary and its servers, read within TIMEOUT seconds in all."""
    deadline = time.monotonic() + timeout
    by_name = proxy_rows(query(path, "show stat", deadline), proxy)
    if master is not None:
        for name, scur in sessions_of_every_worker(master, proxy, deadline).items():
            if name in by_name:
                by_name[name] = by_name[name] | {"scur": str(scur)}
    summary_row = by_name.get("FRONTEND") or by_name["BACKEND"]
    summary = {
        "scur": as_int(summary_row["scur"]),
        "smax": as_int(summary_row["smax"]),
        "slim": as_int(summary_row["slim"]) or None,
        "status": summary_row["status"],
    }
    if "BACKEND" not in by_name:
        # A frontend has no servers, and haproxy answers "Can't find backend." for it.
        return summary, []
    servers = []
    for line in servers_state(path, proxy, deadline):
        bits = int(line["srv_admin_state"])
        row = by_name.get(line["srv_name"], {})
        servers.append(
            {
                "name": line["srv_name"],
                "status": row.get("status", ""),
                "scur": as_int(row.get("scur", "")),
                "weight": as_int(row.get("weight", "")),
                "admin_state": admin_state(bits),
                "admin_state_bits": bits,
            }
        )
    return summary, servers


def selected(servers: list[dict[str, object]], host: str | None) -> list[dict[str, object]]:
    if host is None:
        return servers
    return [s for s in servers if s["name"] == host or str(s["name"]).startswith(host + ":")]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "path", "required": True},
            "master_socket": {"type": "path"},
            "proxy": {"type": "str", "required": True},
            "host": {"type": "str"},
            "state": {"type": "str", "choices": ["query", "ready", "drain", "maint"], "default": "query"},
            "timeout": {"type": "float", "default": 5.0},
        },
        # Changing every server of the public stream at once would be an outage, never a rollout step.
        required_if=[("state", state, ["host"]) for state in ("ready", "drain", "maint")],
        supports_check_mode=True,
    )
    path, proxy, host, state = (module.params[k] for k in ("socket", "proxy", "host", "state"))
    timeout, master = module.params["timeout"], module.params["master_socket"]
    try:
        summary, servers = read_state(path, proxy, timeout, master)
        chosen = selected(servers, host)
        if host is not None and not chosen:
            names = ", ".join(str(s["name"]) for s in servers) or "none"
            module.fail_json(
                msg=f"no server of proxy {proxy} is named {host} or {host}:<port> (servers: {names})",
                proxy=summary,
                servers=servers,
            )
        to_change = [] if state == "query" else [s for s in chosen if s["admin_state"] != state]
        if to_change and not module.check_mode:
            for done, server in enumerate(to_change):
                command = f"set server {proxy}/{server['name']} state {state}"
                answer = query(path, command, time.monotonic() + timeout).strip()
                if answer:
                    module.fail_json(msg=f"haproxy refused '{command}': {answer}", changed=done > 0)
            summary, servers = read_state(path, proxy, timeout, master)
            chosen = selected(servers, host)
            for server in chosen:
                if server["admin_state"] != state:
                    module.warn(
                        f"{server['name']} is still {server['admin_state']} (srv_admin_state "
                        f"{server['admin_state_bits']}): held by a tracked server or address resolution"
                    )
    except CliError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(
        changed=bool(to_change),
        proxy=summary,
        servers=chosen,
        changed_servers=[s["name"] for s in to_change],
    )


if __name__ == "__main__":
    main()
