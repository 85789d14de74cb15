"""Monitoring: Nagios on noc01 checks the proxies and gateways over NRPE.

What is asserted is Nagios's own view (status.dat) after a check forced through its external command
file, not a plugin's exit code: the states an operator would be paged with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import pytest
import yaml
from kit.bundle import MASTER_SOCKET, NRPE_PLUGIN_DIR, NRPE_PORT, RAW_PROXY, STATS_SOCKET, WEBSOCKET_PROXY
from kit.hosts import frontend_sessions, haproxy_workers, wait_until_gateways_up
from kit.probes import Heartbeats
from kit.scenario import SCENARIO_DIR
from testinfra.host import Host

testinfra_hosts = ["podman://noc01"]

STATUS_FILE = "/var/lib/nagios4/status.dat"
COMMAND_FILE = "/var/lib/nagios4/rw/nagios.cmd"
OK, WARNING, CRITICAL = 0, 1, 2
PROXY = RAW_PROXY
SESSIONS = f"{PROXY} sessions"
SERVERS = f"{PROXY} servers"
# The browser stream's proxy and daemon.
WEBSOCKETS = WEBSOCKET_PROXY
WEBSOCKET_ALIVE = "fedmsg-websocket alive"
PROXY_SERVICES = tuple(f"{proxy} {kind}" for proxy in (PROXY, WEBSOCKETS) for kind in ("sessions", "servers"))
GATEWAY_SERVICES = ("fedmsg-gateway alive", "bus traffic fresh", "fedmsg-gateway procs")
CLIENTS_UNIT = "fedmsg-test-clients"
# Real public clients: one SUB socket (one TCP connection through haproxy) each, subscribed to
# everything, held until the unit is stopped.
HOLD_CLIENTS = (
    "import sys, time, zmq\n"
    "context = zmq.Context()\n"
    "sockets = []\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    sock = context.socket(zmq.SUB)\n"
    "    sock.setsockopt(zmq.SUBSCRIBE, b'')\n"
    "    sock.connect(sys.argv[1])\n"
    "    sockets.append(sock)\n"
    "while True:\n"
    "    time.sleep(3600)\n"
)


def platforms_in(group: str) -> list[str]:
    with (SCENARIO_DIR / "molecule.yml").open() as config:
        platforms = yaml.safe_load(config)["platforms"]
    return [platform["name"] for platform in platforms if group in platform.get("groups", [])]


def status_blocks(host: Host, kind: str) -> list[dict[str, str]]:
    """Every `kind {...}` block of status.dat (hoststatus, servicestatus) as a dict."""
    blocks, current = [], None
    for raw_line in host.file(STATUS_FILE).content_string.splitlines():
        line = raw_line.strip()
        if line == f"{kind} {{":
            current = {}
        elif line == "}" and current is not None:
            blocks.append(current)
            current = None
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current[key] = value
    return blocks


def service_status(host: Host, host_name: str, service: str) -> dict[str, str]:
    matches = [
        block
        for block in status_blocks(host, "servicestatus")
        if block["host_name"] == host_name and block["service_description"] == service
    ]
    assert len(matches) == 1, f"Nagios has {len(matches)} '{service}' services on {host_name}"
    return matches[0]


def forced_check(host: Host, host_name: str, service: str, timeout: float = 60) -> dict[str, str]:
    """Force a check through Nagios's external command file; the first result of a check that began
    after this call (forced or scheduled: either sees the state as it is now).

    last_check has 1 s resolution: starting at the next whole second, every check with a last_check
    from that second on began after this call.
    """
    time.sleep(1 - time.time() % 1)
    now = int(time.time())
    command = f"[{now}] SCHEDULE_FORCED_SVC_CHECK;{host_name};{service};{now}"
    host.check_output('timeout 10 sh -c \'echo "$1" > "$2"\' - %s %s', command, COMMAND_FILE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = service_status(host, host_name, service)
        if int(status["last_check"]) >= now:
            return status
        time.sleep(0.5)
    raise AssertionError(f"Nagios did not run the forced '{service}' check on {host_name} in {timeout:.0f} s")


def state_after_forced_checks(
    host: Host, host_name: str, service: str, expected: int, timeout: float = 30
) -> dict[str, str]:
    """Force checks until Nagios shows `expected` (a restarted daemon needs a moment), or give up."""
    deadline = time.monotonic() + timeout
    status = forced_check(host, host_name, service)
    while int(status["current_state"]) != expected and time.monotonic() < deadline:
        time.sleep(1)
        status = forced_check(host, host_name, service)
    return status


def wait_for_sessions(proxy: Host, expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (current := frontend_sessions(proxy)) != expected:
        assert time.monotonic() < deadline, f"{PROXY} holds {current} sessions, not {expected}"
        time.sleep(0.5)


@pytest.fixture
def clients(host: Host, group_vars: dict) -> Iterator[Callable[..., None]]:
    """hold(n, others=0): n real subscribers from app01 through proxy01:9940, replacing any held
    before, beside `others` sessions the test holds itself. Beyond maxconn, the rest wait unaccepted.
    """
    app = host.get_host("podman://app01")
    proxy = host.get_host("podman://proxy01")
    limit = group_vars["proxies"]["haproxy_fedmsg_maxconn"]

    def stop(others: int = 0) -> None:
        app.run("systemctl stop %s", CLIENTS_UNIT)
        wait_for_sessions(proxy, others)

    def hold(count: int, others: int = 0) -> None:
        stop(others)
        if count:
            app.check_output(
                "systemd-run --quiet --collect --unit %s python3 -c %s tcp://proxy01:9940 %s",
                CLIENTS_UNIT,
                HOLD_CLIENTS,
                str(count),
            )
            wait_for_sessions(proxy, min(count + others, limit))

    try:
        yield hold
    finally:
        stop()


def test_nagios_is_active_and_enabled(host: Host) -> None:
    service = host.service("nagios4")
    assert service.is_running
    assert service.is_enabled


def test_every_inventory_host_has_its_checks(host: Host) -> None:
    proxies, gateways = platforms_in("proxies"), platforms_in("busgateway")
    expected = {(name, check) for name in proxies for check in PROXY_SERVICES} | {
        (name, service) for name in gateways for service in (*GATEWAY_SERVICES, WEBSOCKET_ALIVE)
    }
    configured = {
        (block["host_name"], block["service_description"])
        for block in status_blocks(host, "servicestatus")
        if block["host_name"] in proxies + gateways
    }
    assert configured == expected
    assert {block["host_name"] for block in status_blocks(host, "hoststatus")} >= set(proxies + gateways)


def test_nrpe_answers_the_nagios_server_only(host: Host) -> None:
    # From noc01 (allowed): NRPE answers with its version.
    assert host.check_output("/usr/lib/nagios/plugins/check_nrpe -H proxy01").startswith("NRPE v")
    # From the proxy itself (the firewall lets loopback through; allowed_hosts does not):
    # NRPE drops the connection at once instead of waiting for the TLS handshake.
    probe = (
        "import socket\n"
        f"sock = socket.create_connection(('127.0.0.1', {NRPE_PORT}), timeout=5)\n"
        "try:\n"
        "    print('dropped' if sock.recv(1) == b'' else 'data')\n"
        "except ConnectionResetError:\n"
        "    print('dropped')\n"
        "except TimeoutError:\n"
        "    print('waiting')\n"
    )
    proxy = host.get_host("podman://proxy01")
    assert proxy.check_output("python3 -c %s", probe).strip() == "dropped"
    # The same probe from noc01 shows that an allowed host's connection is kept open.
    assert host.check_output("python3 -c %s", probe.replace("127.0.0.1", "proxy01")).strip() == "waiting"


def test_nrpe_takes_no_arguments_from_the_network(host: Host) -> None:
    check_nrpe = "/usr/lib/nagios/plugins/check_nrpe -H proxy01 -c check_fedmsg_raw_zmq_sessions"
    assert host.check_output(check_nrpe).startswith("SESSIONS OK")
    # Arguments would let whoever reaches NRPE choose the thresholds (or worse): NRPE refuses them.
    result = host.run(f"{check_nrpe} -a 1 2")
    assert result.rc != OK
    assert "SESSIONS" not in result.stdout


def test_stats_socket_is_readable_by_nrpe_and_nobody_else(host: Host, group_vars: dict) -> None:
    proxy = host.get_host("podman://proxy01")
    socket = proxy.file(STATS_SOCKET)
    assert socket.is_socket
    assert socket.group == group_vars["proxies"]["haproxy_stats_socket_group"] == "nagios"
    assert socket.mode == 0o660
    plugin = f"{NRPE_PLUGIN_DIR}/check_haproxy_sessions"
    as_nagios = proxy.run("runuser -u nagios -- %s", plugin)
    assert as_nagios.rc == OK, as_nagios.stdout
    as_nobody = proxy.run("runuser -u nobody -- %s", plugin)
    assert as_nobody.rc == 3
    assert "permission denied" in as_nobody.stdout
    # The master CLI, which reaches every worker, is the monitoring group's too.
    master = proxy.file(MASTER_SOCKET)
    assert master.is_socket
    assert (master.user, master.group, master.mode) == ("root", "nagios", 0o660)
    for user, state in (("nagios", OK), ("nobody", 3)):
        run = proxy.run("runuser -u %s -- %s --master-socket %s", user, plugin, MASTER_SOCKET)
        assert run.rc == state, (user, run.stdout)


def test_nagios_counts_the_sessions_left_on_an_old_worker(
    host: Host, group_vars: dict, clients: Callable[..., None]
) -> None:
    """After a reload the old worker keeps its sessions; the new one's stats alone would miss them."""
    app, proxy = host.get_host("podman://app01"), host.get_host("podman://proxy01")
    limit = group_vars["proxies"]["haproxy_fedmsg_maxconn"]
    clients(3)
    proxy.check_output("systemctl reload haproxy")
    deadline = time.monotonic() + 30
    while len(haproxy_workers(proxy)) < 2:
        assert time.monotonic() < deadline, "no old worker after the reload"
        time.sleep(0.5)
    unit = f"{CLIENTS_UNIT}-after-reload"
    app.check_output(
        "systemd-run --quiet --collect --unit %s python3 -c %s tcp://proxy01:9940 2", unit, HOLD_CLIENTS
    )
    try:
        wait_for_sessions(proxy, 5)
        status = forced_check(host, "proxy01", SESSIONS)
        assert f"{PROXY} 5/{limit} " in status["plugin_output"], status["plugin_output"]
        assert status["plugin_output"].endswith(", 1 old worker(s)"), status["plugin_output"]
    finally:
        app.run("systemctl stop %s", unit)
    # Once its last session ends the old worker exits.
    clients(0)
    deadline = time.monotonic() + 30
    while len(haproxy_workers(proxy)) > 1:
        assert time.monotonic() < deadline, "the old worker outlived its sessions"
        time.sleep(0.5)


def test_sessions_state_follows_real_clients(
    host: Host, group_vars: dict, clients: Callable[..., None]
) -> None:
    limit = group_vars["proxies"]["haproxy_fedmsg_maxconn"]
    # The plugin's defaults, which the NRPE role keeps: WARNING above 80 %, CRITICAL above 90 %.
    warning_from, critical_from = math.ceil(limit * 0.8), math.ceil(limit * 0.9)
    steps = [
        (3, OK),
        (warning_from + 2, WARNING),
        (critical_from + 2, CRITICAL),
        (0, OK),
    ]
    assert critical_from + 2 < limit, "the scenario's maxconn is too low for these steps"
    for count, expected in steps:
        clients(count)
        status = forced_check(host, "proxy01", SESSIONS)
        assert int(status["current_state"]) == expected, f"{count} sessions: {status['plugin_output']}"
        assert f"{PROXY} {count}/{limit} " in status["plugin_output"]


def test_flood_past_maxconn_is_critical_and_established_subscribers_keep_receiving(
    host: Host, group_vars: dict, clients: Callable[..., None], heartbeats: Heartbeats
) -> None:
    limit = group_vars["proxies"]["haproxy_fedmsg_maxconn"]
    # Twice maxconn from one address (below its per-source cap): half of them wait unaccepted.
    clients(2 * limit, others=1)
    status = forced_check(host, "proxy01", SESSIONS)
    assert int(status["current_state"]) == CRITICAL, status["plugin_output"]
    assert f"{PROXY} {limit}/{limit} " in status["plugin_output"]
    received = heartbeats.wait_for_more(10)
    assert received == list(range(received[0], received[-1] + 1)), "a heartbeat was lost"
    heartbeats.stop()
    clients(0)
    assert int(forced_check(host, "proxy01", SESSIONS)["current_state"]) == OK


def test_gateway_checks_go_critical_when_the_daemon_stops_and_recover(host: Host) -> None:
    gateway = host.get_host("podman://busgateway01")
    proxy = host.get_host("podman://proxy01")
    try:
        gateway.check_output("systemctl stop fedmsg-gateway")
        for service in GATEWAY_SERVICES:
            status = forced_check(host, "busgateway01", service)
            assert int(status["current_state"]) == CRITICAL, (service, status["plugin_output"])
        # On the proxy: its only gateway DOWN, none UP. haproxy needs its 3 failed checks first.
        status = state_after_forced_checks(host, "proxy01", SERVERS, CRITICAL)
        assert int(status["current_state"]) == CRITICAL, status["plugin_output"]
        assert "0 UP, 1 DOWN (busgateway01:9940)" in status["plugin_output"]
    finally:
        gateway.check_output("systemctl start fedmsg-gateway")
    for service in GATEWAY_SERVICES:
        status = state_after_forced_checks(host, "busgateway01", service, OK)
        assert int(status["current_state"]) == OK, (service, status["plugin_output"])
    status = state_after_forced_checks(host, "proxy01", SERVERS, OK)
    assert int(status["current_state"]) == OK, status["plugin_output"]
    # Leave the chain as found: haproxy marks the gateway up again after its rise checks.
    wait_until_gateways_up(proxy)


# Browser-stream clients on app01: N WebSockets through wss://proxy01:9939 (the test CA), held open.
HOLD_WEBSOCKETS = (
    "import asyncio, ssl, sys, websockets\n"
    "async def main():\n"
    "    context = ssl.create_default_context(cafile=sys.argv[1])\n"
    "    count = int(sys.argv[2])\n"
    "    sockets = [await websockets.connect('wss://proxy01:9939/', ssl=context) for _ in range(count)]\n"
    "    await asyncio.sleep(3600)\n"
    "asyncio.run(main())\n"
)


def test_browser_sessions_are_counted_and_a_stopped_daemon_is_critical(host: Host, group_vars: dict) -> None:
    app = host.get_host("podman://app01")
    gateway = host.get_host("podman://busgateway01")
    limit = group_vars["proxies"]["haproxy_websocket_maxconn"]
    cafile = "/usr/local/share/fedmsg-molecule-ca.crt"
    app.check_output(
        "systemd-run --quiet --collect --unit fedmsg-test-websockets python3 -c %s %s 4",
        HOLD_WEBSOCKETS,
        cafile,
    )
    try:
        status = state_after_forced_checks(host, "proxy01", f"{WEBSOCKETS} sessions", OK)
        deadline = time.monotonic() + 30
        while f"{WEBSOCKETS} 4/{limit} " not in status["plugin_output"]:
            assert time.monotonic() < deadline, status["plugin_output"]
            status = forced_check(host, "proxy01", f"{WEBSOCKETS} sessions")
    finally:
        app.run("systemctl stop fedmsg-test-websockets")
    try:
        gateway.check_output("systemctl stop fedmsg-websocket")
        status = forced_check(host, "busgateway01", WEBSOCKET_ALIVE)
        assert int(status["current_state"]) == CRITICAL, status["plugin_output"]
    finally:
        gateway.check_output("systemctl start fedmsg-websocket")
    status = state_after_forced_checks(host, "busgateway01", WEBSOCKET_ALIVE, OK)
    assert int(status["current_state"]) == OK, status["plugin_output"]
    wait_until_gateways_up(host.get_host("podman://proxy01"), WEBSOCKETS)
