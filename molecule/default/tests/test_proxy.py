"""The proxy host: haproxy's live state, read from its stats socket and stats page."""

from kit.bundle import RAW_PROXY
from kit.hosts import haproxy_stats_rows, main_pid, nofile_limits, wait_until_gateways_up
from testinfra.host import Host

testinfra_hosts = ["podman://proxy01"]

PROXY = RAW_PROXY


def test_haproxy_is_active_and_enabled(host: Host) -> None:
    service = host.service("haproxy")
    assert service.is_running
    assert service.is_enabled


def test_listen_session_limit_is_the_configured_maxconn(host: Host, group_vars: dict) -> None:
    frontend = next(
        row for row in haproxy_stats_rows(host) if row["pxname"] == PROXY and row["svname"] == "FRONTEND"
    )
    assert int(frontend["slim"]) == group_vars["proxies"]["haproxy_fedmsg_maxconn"]


def test_every_gateway_server_is_up(host: Host) -> None:
    # Earlier modules restart the gateway: wait for haproxy's rise checks, then read the whole set.
    wait_until_gateways_up(host)
    servers = {
        row["svname"]: row["status"]
        for row in haproxy_stats_rows(host)
        if row["pxname"] == PROXY and row["svname"] not in ("FRONTEND", "BACKEND")
    }
    assert servers == {"busgateway01:9940": "UP"}


def test_the_health_check_is_the_gateways_healthz(host: Host) -> None:
    """haproxy asks GET /healthz on the gateway's health port (not the ZMTP greeting) and gets 200 ok."""
    wait_until_gateways_up(host)
    server = next(row for row in haproxy_stats_rows(host) if row["svname"] == "busgateway01:9940")
    assert (server["check_status"], server["check_code"]) == ("L7OK", "200")
    # What it answers, asked from the proxy as haproxy does (the firewall admits only the proxies).
    healthz = "http://busgateway01:9950/healthz"
    answer = host.check_output(
        "python3 -c %s %s",
        "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read())",
        healthz,
    )
    assert answer == "b'ok\\n'"


def test_haproxy_runs_with_the_configured_nofile(host: Host, group_vars: dict) -> None:
    configured = group_vars["proxies"]["haproxy_nofile"]
    # haproxy lowers its own soft limit to what maxconn needs; the hard limit is systemd's.
    _, hard = nofile_limits(host, main_pid(host, "haproxy"))
    assert hard == configured


def test_stats_page_requires_the_password(host: Host, group_vars: dict) -> None:
    password = group_vars["proxies"]["haproxy_stats_password"]
    script = (
        "import base64,sys,urllib.request,urllib.error\n"
        "req=urllib.request.Request('http://127.0.0.1:8404/;csv')\n"
        "if len(sys.argv) > 1:\n"
        "    req.add_header('Authorization','Basic '+base64.b64encode(sys.argv[1].encode()).decode())\n"
        "try:\n"
        "    print(urllib.request.urlopen(req, timeout=5).status)\n"
        "except urllib.error.HTTPError as error:\n"
        "    print(error.code)\n"
    )
    assert host.check_output("python3 -c %s", script).strip() == "401"
    assert host.check_output("python3 -c %s %s", script, f"admin:{password}").strip() == "200"
