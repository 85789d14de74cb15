"""The scale-out scenario's own facts and fixtures; everything shared comes from the test kit (tests/kit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import testinfra
from kit.hosts import read_json
from kit.probes import PUBLIC_URL, Background, background
from kit.scenario import EPHEMERAL_DIR, group_vars
from kit.wait import wait_until
from testinfra.host import Host

# The operator's inventory the flow edits: prepare copies the scenario's inventory/hosts.yml there.
SCRATCH_INVENTORY = EPHEMERAL_DIR / "scratch-inventory"
GATEWAYS = ("busgateway01", "busgateway02")
PROBE = "/usr/local/bin/fedmsg-session-probe"

__all__ = ["background", "group_vars"]


@pytest.fixture(scope="session")
def ports(group_vars: dict[str, dict[str, Any]]) -> list[int]:
    return group_vars["all"]["fedmsg_public_ports"]


@pytest.fixture(scope="session")
def proxy() -> Host:
    return testinfra.get_host("podman://proxy01")


@pytest.fixture(scope="session")
def app() -> Host:
    return testinfra.get_host("podman://app01")


class HeldSubscribers:
    """`fedmsg-session-probe hold` on app01: CONNECTIONS public subscribers held for 4 s, each counting
    what it receives. Started by the held_subscribers fixture, which returns once every one is connected.
    """

    def __init__(self, app: Host, background: Background, name: str, connections: int) -> None:
        self.app, self.connections = app, connections
        self.status_file = f"/run/{name}.json"
        app.run("rm -f %s", self.status_file)
        background(
            f"{name}-subscribers",
            f"{PROBE} hold --subscribe {PUBLIC_URL} --connections {connections} --seconds 4"
            f" --status {self.status_file}",
        )
        self._wait_for("connected", f"{connections} connections", timeout=90)

    def _wait_for(self, key: str, what: str, timeout: float) -> None:
        wait_until(
            lambda: (read_json(self.app, self.status_file) or {}).get(key), what, timeout, interval=0.5
        )

    def received_everything(self) -> dict[str, Any]:
        """After the hold: no subscriber was dropped and at least 4 messages reached every one of them
        (the probe's report, returned)."""
        self._wait_for("done", "the count to finish", timeout=30)
        result = read_json(self.app, self.status_file)
        assert result is not None
        assert result["disconnects"] == 0
        counts = result["counts"].values()
        assert max(counts) == self.connections
        assert sum(1 for count in counts if count == self.connections) >= 4, result["counts"]
        return result


@pytest.fixture
def held_subscribers(app: Host, background: Background) -> Callable[[str, int], HeldSubscribers]:
    """Start HeldSubscribers(name, connections) on app01; stopped after the test."""
    return lambda name, connections: HeldSubscribers(app, background, name, connections)
