"""The scale-out scenario's own facts and fixtures; everything shared comes from the test kit (tests/kit)."""

from __future__ import annotations

from typing import Any

import pytest
import testinfra
from kit.probes import background
from kit.scenario import EPHEMERAL_DIR, group_vars
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
