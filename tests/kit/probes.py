"""The chain's clients on the bus host (app01): the heartbeat subscriber, probes run as transient units."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
import testinfra
from testinfra.host import Host

from kit.wait import wait_until

BUS_HOST = "podman://app01"
# The raw stream as public clients reach it, from inside the chain's network.
PUBLIC_URL = "tcp://proxy01:9940"
Background = Callable[[str, str], None]


class Heartbeats:
    """A public subscriber on app01, through proxy01:9940, printing the demo publisher's messages.

    The demo publisher numbers its messages ("i") and sends one every 0.5 s: the numbers this
    subscriber printed show whether the stream flows, and whether any message went missing.
    """

    UNIT = "fedmsg-test-heartbeats"
    SEQUENCE = re.compile(r'"i": (\d+)')

    def __init__(self, app: Host) -> None:
        self.app = app
        app.check_output(
            "systemd-run --quiet --collect --unit %s fedmsg-chain-probe tail"
            " --subscribe %s --prefix org.fedoraproject.dev.demo --count 1000000",
            self.UNIT,
            PUBLIC_URL,
        )
        # This run's output only: the journal keeps earlier runs of the same unit name.
        self.invocation = app.check_output("systemctl show --property InvocationID --value %s", self.UNIT)

    def received(self) -> list[int]:
        query = "journalctl --quiet -o cat _SYSTEMD_INVOCATION_ID=%s"
        lines = self.app.check_output(query, self.invocation).splitlines()
        return [int(match.group(1)) for line in lines if (match := self.SEQUENCE.search(line))]

    def wait_for_more(self, count: int, timeout: float = 30) -> list[int]:
        """Until `count` more messages than now have arrived; everything received by then."""
        received = self.received()
        target = (received[-1] if received else 0) + count

        def arrived() -> bool:
            nonlocal received
            received = self.received()
            return bool(received) and received[-1] >= target

        try:
            wait_until(arrived, f"message {target}", timeout, interval=0.5)
        except AssertionError:
            raise AssertionError(f"the subscriber stalled at {received[-1:]}") from None
        return received

    def stop(self) -> None:
        self.app.run("systemctl stop %s", self.UNIT)


@pytest.fixture
def heartbeats() -> Iterator[Heartbeats]:
    """An established public subscriber that has received at least one message."""
    subscriber = Heartbeats(testinfra.get_host(BUS_HOST))
    try:
        subscriber.wait_for_more(1)
        yield subscriber
    finally:
        subscriber.stop()


@pytest.fixture
def background() -> Iterator[Background]:
    """Start commands on app01 as transient systemd units (unit, command); stop them after the test."""
    app = testinfra.get_host(BUS_HOST)
    units: list[str] = []

    def start(unit: str, command: str) -> None:
        app.run("systemctl stop %s; systemctl reset-failed %s", unit, unit)
        app.check_output(f"systemd-run --unit {unit} --collect {command}")
        units.append(unit)

    yield start
    for unit in units:
        app.run("systemctl stop %s", unit)
