"""Fixtures: a real haproxy with `listen fedmsg-raw-zmq` in front of two holding TCP servers."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from haproxy_chain import (
    Chain,
    ChainFactory,
    Haproxy,
    HoldingServer,
    free_port,
    private_loopback,
    render_config,
)


@pytest.fixture
def start_chain() -> Iterator[ChainFactory]:
    """Start haproxy in front of two holding servers; keyword arguments shape the config."""
    workdir = Path(tempfile.mkdtemp(prefix="hap-"))
    backends = [HoldingServer(), HoldingServer()]
    started: list[Chain] = []

    def start(listen_maxconn: int = 10, global_maxconn: int = 40, filler_backends: int = 0) -> Chain:
        listen_host = private_loopback()
        listen_port = free_port(listen_host)
        config, servers = render_config(
            str(workdir / "admin.sock"),
            listen_host,
            listen_port,
            [b.port for b in backends],
            listen_maxconn=listen_maxconn,
            global_maxconn=global_maxconn,
            filler_backends=filler_backends,
        )
        haproxy = Haproxy(workdir, config)
        chain = Chain(haproxy, listen_host, listen_port, servers, backends=backends)
        # Registered before it starts: a start that fails half-way must not leave haproxy running.
        started.append(chain)
        haproxy.start()
        haproxy.wait_servers_up(servers)
        return chain

    yield start
    for chain in started:
        for client in chain.clients:
            client.close()
        chain.haproxy.stop()
    for backend in backends:
        backend.close()
    shutil.rmtree(workdir)


@pytest.fixture
def chain(start_chain: ChainFactory) -> Chain:
    return start_chain()
