"""Fixtures: daemons started for a test and stopped after it, a ZeroMQ context destroyed after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from gateway_harness import Gateway
from websocket_harness import WebsocketDaemon


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Start a ready daemon: start_gateway([endpoint, ...], *extra_args, **extra_env)."""
    started: list[Gateway] = []

    def start(endpoints: list[str], *args: str, **env: str) -> Gateway:
        gateway = Gateway(tmp_path, endpoints, *args, **env)
        started.append(gateway)
        gateway.wait_ready()
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def start_websocket(tmp_path: Path) -> Iterator[Callable[..., WebsocketDaemon]]:
    """Start a ready fedmsg-websocket: start_websocket([endpoint, ...], *extra_args, **extra_env)."""
    started: list[WebsocketDaemon] = []

    def start(endpoints: list[str], *args: str, **env: str) -> WebsocketDaemon:
        daemon = WebsocketDaemon(tmp_path, endpoints, *args, **env)
        started.append(daemon)
        daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)
