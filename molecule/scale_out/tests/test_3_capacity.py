"""maxconn sessions through the proxy although one proxy->gateway path holds only the port range.

proxy01 was created with ip_local_port_range 40000-40199 (200 ports); maxconn is 500. One path
(busgateway01:9940) stops near 200 connections; busgateway01's three ports hold all 500.
"""

from collections.abc import Callable

from conftest import GATEWAYS, HeldSubscribers
from kit.hosts import haproxy_servers as servers
from kit.hosts import haproxy_stats as stats
from kit.hosts import set_gateway_state
from testinfra.host import Host

testinfra_hosts = ["podman://proxy01"]

PORT_RANGE = 200

# Plain TCP connections from proxy01 to one gateway address:port until the kernel has no local port.
# Closed with RST (SO_LINGER 0): a FIN would leave 200 ports in TIME_WAIT for a minute, taken from
# the path the next test needs.
_FILL_ONE_PATH = (
    "import errno,socket,struct,sys\n"
    "held=[]\n"
    "try:\n"
    "    while len(held) < 1000:\n"
    "        s=socket.socket()\n"
    "        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
    "        held.append(s)\n"
    "        s.settimeout(5)\n"
    "        s.connect((sys.argv[1], int(sys.argv[2])))\n"
    "except OSError as e:\n"
    "    assert e.errno == errno.EADDRNOTAVAIL, e\n"
    "    held.pop()\n"
    "print(len(held))\n"
    "for s in held: s.close()\n"
)


def test_one_path_holds_no_more_than_the_port_range(host: Host) -> None:
    held = int(host.check_output("python3 -c %s busgateway01 9940", _FILL_ONE_PATH))
    # A few ports may be in use by haproxy's own sessions and health checks to that port.
    assert PORT_RANGE - 20 <= held <= PORT_RANGE


def test_maxconn_subscribers_through_one_gateways_three_paths(
    host: Host, group_vars: dict, held_subscribers: Callable[[str, int], HeldSubscribers]
) -> None:
    maxconn = group_vars["proxies"]["haproxy_fedmsg_maxconn"]
    # Only busgateway01's 3 paths take new sessions: 500 do not fit in 2 paths (400 ports).
    set_gateway_state(host, GATEWAYS[1], "drain")
    try:
        held = held_subscribers("capacity", maxconn)
        assert int(stats(host)["FRONTEND"]["scur"]) == maxconn
        on_first = {
            name: int(row["scur"]) for name, row in servers(host).items() if name.startswith(GATEWAYS[0])
        }
        assert sum(on_first.values()) == maxconn
        assert sum(on_first.values()) > 2 * PORT_RANGE
        assert all(count <= PORT_RANGE for count in on_first.values()), on_first

        assert held.received_everything()["handshakes"] == maxconn
    finally:
        set_gateway_state(host, GATEWAYS[1], "ready")
