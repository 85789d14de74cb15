"""Host firewalls: the gateways' ports only from the proxies, the proxies' :9940 and :9939 from everyone,
metrics only from the monitoring host."""

import pytest
from testinfra.host import Host

testinfra_hosts = ["podman://app01"]

CONNECT = (
    "import socket,sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()\n"
    "    print('connected')\n"
    "except OSError as error:\n"
    "    print(type(error).__name__)\n"
)


def connect_from(host: Host, target: str, port: int) -> str:
    return host.check_output("python3 -c %s %s %s", CONNECT, target, str(port)).strip()


# The raw stream's gateway port, fedmsg-websocket's, and the gateway's health check (haproxy's check).
GATEWAY_PORTS = pytest.mark.parametrize("port", [9940, 9919, 9950])


@GATEWAY_PORTS
def test_a_client_cannot_bypass_haproxy_to_the_gateway(host: Host, port: int) -> None:
    # Both daemons listen on every address (the health check too): only the firewall refuses this.
    assert connect_from(host, "busgateway01", port) == "ConnectionRefusedError"


@GATEWAY_PORTS
def test_the_proxy_reaches_the_gateway(host: Host, port: int) -> None:
    proxy = host.get_host("podman://proxy01")
    assert connect_from(proxy, "busgateway01", port) == "connected"


@pytest.mark.parametrize("port", [9940, 9939])
def test_the_public_ports_are_open_to_everyone(host: Host, port: int) -> None:
    assert connect_from(host, "proxy01", port) == "connected"


STATS_PAGE = (
    "import urllib.request,urllib.error\n"
    "try:\n"
    "    print(urllib.request.urlopen('http://proxy01:8404/', timeout=5).status)\n"
    "except urllib.error.HTTPError as error:\n"
    "    print(error.code)\n"
    "except OSError as error:\n"
    "    print(type(getattr(error, 'reason', error)).__name__)\n"
)


def test_the_stats_page_answers_only_the_admin_host(host: Host) -> None:
    assert connect_from(host, "proxy01", 8404) == "ConnectionRefusedError"
    admin = host.get_host("podman://noc01")
    # It answers the admin host, and asks it for the password.
    assert admin.check_output("python3 -c %s", STATS_PAGE).strip() == "401"


# What Prometheus on noc01 scrapes beyond the stats page: both daemons' metrics, bound on every address
# (molecule.yml, as in the inventories), and the proxy's sessions exporter.
METRICS = pytest.mark.parametrize(
    ("target", "port"), [("busgateway01", 9941), ("busgateway01", 9929), ("proxy01", 9101)]
)


@METRICS
def test_metrics_answer_the_monitoring_host(host: Host, target: str, port: int) -> None:
    assert connect_from(host.get_host("podman://noc01"), target, port) == "connected"


@METRICS
def test_metrics_are_closed_to_clients_and_proxies(host: Host, target: str, port: int) -> None:
    assert connect_from(host, target, port) == "ConnectionRefusedError"
    if target != "proxy01":
        assert connect_from(host.get_host("podman://proxy01"), target, port) == "ConnectionRefusedError"
