"""Abuse of the public port (:9940 is on the internet) and of the admin interfaces."""

import os
import socket
import threading
import time

import zmq
from conftest import GATEWAYS
from faultkit import PROXY, Watch, container_ip, outcome, podman, record
from kit.bundle import NRPE_PLUGIN_DIR, STATS_SOCKET
from kit.hosts import haproxy_admin as admin
from kit.hosts import haproxy_stats_rows, main_pid
from kit.wait import wait_until as wait
from testinfra.host import Host

testinfra_hosts = ["podman://proxy01"]

ZMTP_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"


def _gateway_pids(host: Host) -> dict[str, int]:
    return {name: main_pid(host.get_host(f"podman://{name}"), "fedmsg-gateway") for name in GATEWAYS}


def _closed_after(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the peer closed the connection (reading whatever it sent), None if it stayed open."""
    start = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - start < timeout:
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def test_garbage_handshakes_and_http_harm_nobody(host: Host, watch: Watch) -> None:
    address = (container_ip("proxy01"), 9940)
    pids = _gateway_pids(host)
    start = time.monotonic()
    garbage = socket.create_connection(address)
    garbage.sendall(os.urandom(65536))
    http = socket.create_connection(address)
    http.sendall(b"GET / HTTP/1.1\r\nHost: hub.fedoraproject.org\r\n\r\n")
    half_open = socket.create_connection(address)
    half_open.sendall(ZMTP_SIGNATURE[:10])  # the greeting's signature, then nothing
    never_reads = socket.create_connection(address)
    never_reads.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # Each watched in its own thread: libzmq drops a peer that has not completed the handshake
    # within ZMQ_HANDSHAKE_IVL (30 s); bytes that are not a ZMTP signature may end it sooner.
    probes = {"garbage": garbage, "http": http, "half_open": half_open, "never_reads": never_reads}
    closed: dict[str, float | None] = {}
    threads = [
        threading.Thread(target=lambda n=name, s=sock: closed.__setitem__(n, _closed_after(s, 45)))
        for name, sock in probes.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(2)
    seen = outcome(watch, start, time.monotonic())
    for sock in (garbage, http, half_open, never_reads):
        sock.close()
    assert _gateway_pids(host) == pids, "a gateway restarted"
    assert seen.affected == 0
    assert seen.lost_total == 0
    assert None not in closed.values(), f"the gateway kept an abusive connection open: {closed}"
    record(
        "garbage, HTTP, half-open handshake, never-reading client",
        {f"{k}_closed_after_s": round(v or 0, 1) for k, v in closed.items()} | seen.row(),
    )


def test_messages_sent_into_the_public_port_go_nowhere(host: Host, watch: Watch, public_url: str) -> None:
    bus = host.get_host("podman://app01")
    since = bus.check_output("date '+%Y-%m-%d %H:%M:%S'")
    injected = b"org.fedoraproject.prod.INJECTED"
    pub = watch.ctx.socket(zmq.PUB)  # PUB to PUB: the gateway refuses the handshake
    xsub = watch.ctx.socket(zmq.XSUB)  # XSUB may send upstream: PUB discards what is not a subscription
    for sock in (pub, xsub):
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(public_url)
    time.sleep(1)
    for _ in range(500):
        pub.send_multipart([injected, b"{}"])
        xsub.send_multipart([injected, b"{}"])
        xsub.send(b"\x02" + injected)
    time.sleep(3)
    pub.close()
    xsub.close()
    foreign_at_clients = sum(c.foreign for c in watch.clients)
    foreign_at_bus = bus.check_output(
        "journalctl -u fedmsg-seq-publisher --since %s -o cat | grep -c FOREIGN || true", since
    )
    assert foreign_at_clients == 0
    assert int(foreign_at_bus) == 0
    record(
        "messages sent into :9940",
        {"sent": 1500, "reached_clients": foreign_at_clients, "reached_bus": int(foreign_at_bus)},
    )


def _sessions_by_source(host: Host) -> dict[str, int]:
    """conn_cur per client address from fedmsg-raw-zmq's stick table."""
    table = {}
    for line in admin(host, f"show table {PROXY}").splitlines():
        if " key=" in line:
            fields = dict(field.split("=", 1) for field in line.split()[1:] if "=" in field)
            table[fields["key"]] = int(fields["conn_cur"])
    return table


def _frontend(host: Host) -> dict[str, str]:
    return next(r for r in haproxy_stats_rows(host) if r["pxname"] == PROXY and r["svname"] == "FRONTEND")


def test_connection_flood_one_source_capped_established_keep_receiving(
    host: Host, watch: Watch, public_url: str, group_vars: dict
) -> None:
    limit = group_vars["proxies"]["haproxy_fedmsg_max_conn_per_source"]
    maxconn = group_vars["proxies"]["haproxy_fedmsg_maxconn"]
    start = time.monotonic()
    # Source 1, the test host: far more connections than one address may hold; zmq retries refused ones.
    flood = watch.ctx.socket(zmq.XSUB)
    flood.setsockopt(zmq.LINGER, 0)
    flood.setsockopt(zmq.RECONNECT_IVL, 500)
    for _ in range(limit + 500):
        flood.connect(public_url)
    wait(lambda: max(_sessions_by_source(host).values()) >= limit - 5, "one source to reach its cap", 90)
    time.sleep(3)
    from_host = max(_sessions_by_source(host).values())
    denied = int(_frontend(host)["dcon"])
    # Source 2, app01: fills the proxy to maxconn; connections beyond it wait in the accept queue.
    script = "import zmq,time\ns=zmq.Context().socket(zmq.XSUB)\n"
    script += f"[s.connect({public_url!r}) for _ in range({limit})]\ntime.sleep(120)"
    podman("exec", "-d", "app01", "sh", "-c", 'echo $$ > /tmp/flood.pid; exec python3 -c "$0"', script)
    try:
        full = wait(lambda: int(_frontend(host)["scur"]) >= maxconn, "fedmsg-raw-zmq to reach maxconn", 60)
        time.sleep(5)
        # As the nagios_nrpe role installs it (this scenario's prepare.yml): beside the modules it imports.
        plugin = f"{NRPE_PLUGIN_DIR}/check_haproxy_sessions"
        check = host.run("%s --socket %s --proxy %s", plugin, STATS_SOCKET, PROXY)
        by_source = _sessions_by_source(host)
        seen = outcome(watch, start, time.monotonic())
    finally:
        flood.close(linger=0)
        podman("exec", "app01", "sh", "-c", "kill $(cat /tmp/flood.pid)", check=False)
    assert from_host <= limit + 2, f"one address holds {from_host} sessions, limit {limit}"
    assert denied > 0
    assert check.rc == 2, check.stdout
    assert seen.affected == 0
    assert seen.lost_total == 0
    record(
        "connection flood",
        {
            "per_source_limit": limit,
            "maxconn": maxconn,
            "first_source_sessions_alone": from_host,
            "sessions_by_source_when_full": by_source,
            "connections_denied": denied,
            "maxconn_reached_after_s": round(full, 1),
            "nagios_check": check.stdout.strip(),
            "nagios_exit": check.rc,
        }
        | seen.row(),
    )


def test_stats_socket_refuses_other_users(host: Host) -> None:
    socket_file = host.file(STATS_SOCKET)
    assert socket_file.is_socket
    assert socket_file.mode == 0o660
    assert socket_file.group == "haproxy"
    probe = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect('{STATS_SOCKET}')"
    as_nobody = host.run("runuser -u nobody -- python3 -c %s", probe)
    assert as_nobody.rc != 0
    assert "PermissionError" in as_nobody.stderr
    assert host.run("python3 -c %s", probe).rc == 0  # the same probe works for a member (root)
