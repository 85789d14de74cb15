"""New subscribers are spread over both gateways (leastconn) and every one of them receives."""

from conftest import GATEWAYS, PROBE
from kit.hosts import read_json, sessions_per_gateway
from kit.probes import PUBLIC_URL as PUBLIC
from kit.probes import Background
from kit.wait import wait_until
from testinfra.host import Host

testinfra_hosts = ["podman://app01"]

CONNECTIONS = 60


def test_new_subscribers_spread_over_both_gateways_and_receive(
    host: Host, proxy: Host, background: Background
) -> None:
    status_file = "/run/spread.json"
    host.run("rm -f %s", status_file)
    background(
        "spread-subscribers",
        f"{PROBE} hold --subscribe {PUBLIC} --connections {CONNECTIONS} --seconds 4 --status {status_file}",
    )
    wait_until(
        lambda: (read_json(host, status_file) or {}).get("connected"), "every connection", interval=0.5
    )
    per_gateway = sessions_per_gateway(proxy, GATEWAYS)
    assert sum(per_gateway.values()) == CONNECTIONS
    # leastconn over 2 gateways x 3 ports: an even spread (10 per server), not everything on one.
    assert all(count >= CONNECTIONS // 3 for count in per_gateway.values()), per_gateway

    wait_until(
        lambda: (read_json(host, status_file) or {}).get("done"),
        "the count to finish",
        timeout=30,
        interval=0.5,
    )
    result = read_json(host, status_file)
    assert result["disconnects"] == 0
    counts = result["counts"].values()
    assert max(counts) == CONNECTIONS
    assert sum(1 for count in counts if count == CONNECTIONS) >= 4, result["counts"]
