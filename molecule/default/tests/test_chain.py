"""End to end: messages published on the bus reach public subscribers through proxy01:9940."""

import json
import time

from kit.hosts import main_pid
from kit.probes import Heartbeats
from testinfra.host import Host

testinfra_hosts = ["podman://app01"]

MESSAGES = 1000


def test_every_message_arrives_byte_identical_and_in_order(host: Host) -> None:
    # 3001 is one of the gateway's bus endpoints, bound only while the probe runs.
    output = host.check_output(
        "fedmsg-chain-probe check --publish tcp://*:3001 --subscribe tcp://proxy01:9940 --count %s",
        str(MESSAGES),
    )
    result = json.loads(output)
    assert result["all"] == {
        "expected": MESSAGES,
        "received": MESSAGES,
        "identical": True,
        "first_difference": None,
    }
    # The probe's topics cycle over four names, two of which start with the "git." prefix.
    assert result["prefix"] == {
        "expected": MESSAGES // 2,
        "received": MESSAGES // 2,
        "identical": True,
        "first_difference": None,
    }


def test_the_demo_publisher_stream_flows_through_the_proxy(host: Host) -> None:
    output = host.check_output(
        "timeout 30 fedmsg-chain-probe tail --subscribe tcp://proxy01:9940 "
        "--prefix org.fedoraproject.dev.demo --count 3"
    )
    lines = output.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("org.fedoraproject.dev.demo.heartbeat {") for line in lines)


def test_gateway_killed_is_restarted_and_subscribers_come_back_by_themselves(
    host: Host, heartbeats: Heartbeats
) -> None:
    gateway = host.get_host("podman://busgateway01")
    restarts = "systemctl show --property NRestarts --value fedmsg-gateway"
    before, pid = int(gateway.check_output(restarts)), main_pid(gateway, "fedmsg-gateway")
    gateway.check_output("systemctl kill --signal=KILL fedmsg-gateway")
    deadline = time.monotonic() + 30
    while int(gateway.check_output(restarts)) == before or not gateway.service("fedmsg-gateway").is_running:
        assert time.monotonic() < deadline, "systemd did not restart the killed gateway"
        time.sleep(0.5)
    assert main_pid(gateway, "fedmsg-gateway") != pid
    # The same subscriber, not a new one: libzmq reconnects through haproxy on its own. What was
    # published while no gateway ran is gone (the bus keeps nothing), so only the flow is asserted.
    heartbeats.wait_for_more(5, timeout=60)
