"""Host firewalls: the gateways' public port only from the proxies, the proxies' :9940 from everyone."""

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


def test_a_client_cannot_bypass_haproxy_to_the_gateway(host: Host) -> None:
    # The gateway listens on every address (test_gateway): only the firewall refuses this.
    assert connect_from(host, "busgateway01", 9940) == "ConnectionRefusedError"


def test_the_proxy_reaches_the_gateway(host: Host) -> None:
    proxy = host.get_host("podman://proxy01")
    assert connect_from(proxy, "busgateway01", 9940) == "connected"


def test_the_public_port_is_open_to_everyone(host: Host) -> None:
    assert connect_from(host, "proxy01", 9940) == "connected"


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
