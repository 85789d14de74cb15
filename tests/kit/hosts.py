"""What the verifiers ask of a container (a testinfra host): haproxy's sockets, a service's pid and limits."""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

import haproxy_cli
from testinfra.host import Host

from kit import haproxy_socket
from kit.bundle import MASTER_SOCKET, RAW_PROXY, STATS_SOCKET
from kit.wait import wait_until

# The bundle's reader of haproxy's sockets (haproxy_cli, kit.haproxy_socket.query), run by the
# container's python3: the images have no socat.
_QUERY_SCRIPT = "\n".join(
    [
        inspect.getsource(haproxy_cli),
        "import sys",
        "sys.stdout.write(query(sys.argv[1], sys.argv[2], time.monotonic() + 5))",
    ]
)


def haproxy_admin(host: Host, command: str, socket_path: str = STATS_SOCKET) -> str:
    """One command on the host's live stats (or master) socket, its whole answer."""
    return host.check_output("python3 -c %s %s %s", _QUERY_SCRIPT, socket_path, command)


def haproxy_stats_rows(host: Host, socket_path: str = STATS_SOCKET) -> list[dict[str, str]]:
    """`show stat` from the live stats socket as CSV rows."""
    return haproxy_socket.stat_rows(haproxy_admin(host, "show stat", socket_path))


def haproxy_stats(host: Host, proxy: str = RAW_PROXY) -> dict[str, dict[str, str]]:
    """`show stat` rows of one proxy by svname (FRONTEND, BACKEND and every server)."""
    return {row["svname"]: row for row in haproxy_stats_rows(host) if row["pxname"] == proxy}


def haproxy_servers(host: Host, proxy: str = RAW_PROXY) -> dict[str, dict[str, str]]:
    """The server rows of one proxy by name."""
    return haproxy_socket.servers(haproxy_stats_rows(host), proxy)


def wait_until_gateways_up(proxy: Host, proxy_name: str = RAW_PROXY, timeout: float = 30) -> None:
    """Until haproxy on PROXY marks every server of PROXY_NAME UP (after a restart: its rise checks)."""
    last: dict[str, str] = {}

    def all_up() -> bool:
        last.clear()
        last.update({name: row["status"] for name, row in haproxy_servers(proxy, proxy_name).items()})
        return bool(last) and set(last.values()) == {"UP"}

    try:
        wait_until(all_up, f"every {proxy_name} server UP", timeout, interval=0.5)
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; last seen: {last}") from None


def haproxy_workers(host: Host) -> list[int]:
    """Pids of haproxy's live workers (`show proc` on the master CLI): the current one, then old ones."""
    return haproxy_socket.workers(haproxy_admin(host, "show proc", MASTER_SOCKET))


def frontend_sessions(host: Host, proxy: str = RAW_PROXY) -> int:
    """The proxy's sessions on every worker: after a reload the old ones keep theirs."""
    total = 0
    for pid in haproxy_workers(host):
        rows = haproxy_socket.stat_rows(haproxy_admin(host, f"@!{pid} show stat", MASTER_SOCKET))
        total += sum(int(r["scur"]) for r in rows if r["pxname"] == proxy and r["svname"] == "FRONTEND")
    return total


_METRICS_SCRIPT = "import sys, urllib.request as u; print(u.urlopen(f'http://127.0.0.1:{sys.argv[1]}/metrics').read().decode())"


def metrics_page(host: Host, port: int) -> str:
    """A daemon's /metrics page, fetched inside the host on its loopback address."""
    return host.check_output("python3 -c %s %s", _METRICS_SCRIPT, str(port))


def main_pid(host: Host, service: str) -> int:
    pid = int(host.check_output("systemctl show --property MainPID --value %s", service))
    assert pid > 0, f"{service} has no main process"
    return pid


def nofile_limits(host: Host, pid: int) -> tuple[int, int]:
    """(soft, hard) 'Max open files' of a running process: the limit that really took effect."""
    for line in host.file(f"/proc/{pid}/limits").content_string.splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no 'Max open files' in /proc/{pid}/limits")


def read_json(host: Host, path: str) -> dict[str, Any] | None:
    """A JSON file on the host (a probe's status), or None while it does not exist."""
    result = host.run("cat %s", path)
    return json.loads(result.stdout) if result.rc == 0 else None


def sessions_per_gateway(
    proxy: Host, gateways: tuple[str, ...], proxy_name: str = RAW_PROXY
) -> dict[str, int]:
    """Current sessions of each gateway host, summed over its server lines (one per port)."""
    totals = dict.fromkeys(gateways, 0)
    for name, row in haproxy_servers(proxy, proxy_name).items():
        totals[name.split(":")[0]] += int(row["scur"])
    return totals


def gateway_by_client_port(proxy: Host, proxy_name: str = RAW_PROXY) -> dict[int, str]:
    """haproxy's own view of where each public session went: client port -> gateway host.

    From `show sess`: `src=ADDRESS:PORT` is the client's end, `srv=HOST:PORT` the server line.
    """
    sessions = {}
    for line in haproxy_admin(proxy, "show sess").splitlines():
        match = re.search(r" src=\S+:(\d+) fe=" + re.escape(proxy_name) + r" .* srv=([^:\s]+):", line)
        if match:
            sessions[int(match[1])] = match[2]
    return sessions


def set_gateway_state(proxy: Host, gateway: str, state: str, proxy_name: str = RAW_PROXY) -> None:
    """Every server line of GATEWAY to STATE (ready, drain, maint) on the proxy's runtime API."""
    for name in haproxy_servers(proxy, proxy_name):
        if name.startswith(gateway + ":"):
            answer = haproxy_admin(proxy, f"set server {proxy_name}/{name} state {state}")
            assert answer.strip() == "", answer
