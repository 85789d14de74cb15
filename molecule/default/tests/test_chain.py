"""End to end: messages published on the bus reach public subscribers through proxy01:9940."""

import json

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
