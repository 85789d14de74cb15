"""Fixtures for the fault and abuse tests: the proxy's public address and a healthy chain to start from."""

from collections.abc import Iterator

import pytest
from faultkit import PROXY, ServerStates, Watch, container_ip
from kit.hosts import haproxy_stats_rows
from kit.scenario import group_vars
from kit.wait import wait_until
from testinfra.host import Host

GATEWAYS = ["busgateway01", "busgateway02"]
__all__ = ["group_vars"]  # the kit's fixture: this scenario's molecule.yml


@pytest.fixture(scope="session")
def public_url() -> str:
    return f"tcp://{container_ip('proxy01')}:9940"


def servers_up(host: Host) -> bool:
    rows = haproxy_stats_rows(host)
    status = {
        r["svname"]: r["status"]
        for r in rows
        if r["pxname"] == PROXY and r["svname"].startswith("busgateway")
    }
    return status == {f"{name}:9940": "UP" for name in GATEWAYS}


@pytest.fixture
def healthy(host: Host) -> None:
    """Both gateways UP in haproxy, no session left over from an earlier test."""
    wait_until(lambda: servers_up(host), "both gateways UP in haproxy", 90)


@pytest.fixture
def watch(healthy: None, public_url: str) -> Iterator[Watch]:
    watch = Watch(public_url, tracked=20)
    watch.wait_receiving()
    yield watch
    watch.close()


@pytest.fixture
def states(healthy: None) -> Iterator[ServerStates]:
    """haproxy's server states every 50 ms (when checks failed, when DOWN or UP came)."""
    states = ServerStates()
    yield states
    states.close()
