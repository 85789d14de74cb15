"""New subscribers are spread over both gateways (leastconn) and every one of them receives."""

from collections.abc import Callable

from conftest import GATEWAYS, HeldSubscribers
from kit.hosts import sessions_per_gateway
from testinfra.host import Host

testinfra_hosts = ["podman://app01"]

CONNECTIONS = 60


def test_new_subscribers_spread_over_both_gateways_and_receive(
    proxy: Host, held_subscribers: Callable[[str, int], HeldSubscribers]
) -> None:
    held = held_subscribers("spread", CONNECTIONS)
    per_gateway = sessions_per_gateway(proxy, GATEWAYS)
    assert sum(per_gateway.values()) == CONNECTIONS
    # leastconn over 2 gateways x 3 ports: an even spread (10 per server), not everything on one.
    assert all(count >= CONNECTIONS // 3 for count in per_gateway.values()), per_gateway

    held.received_everything()
