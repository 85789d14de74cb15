"""Fixtures: daemons started for a test and stopped after it, a ZeroMQ context destroyed after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import zmq
from gateway_harness import Daemon, Gateway, bus_publisher, wait_subscribed
from websocket_harness import WebsocketDaemon

Started = TypeVar("Started", bound=Daemon)


def _started(tmp_path: Path, kind: Callable[..., Started]) -> Iterator[Callable[..., Started]]:
    """start([endpoint, ...], *extra_args, **extra_env) -> a ready daemon, stopped after the test."""
    started: list[Started] = []

    def start(endpoints: list[str], *args: str, **env: str) -> Started:
        daemon = kind(tmp_path, endpoints, *args, **env)
        started.append(daemon)
        daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    yield from _started(tmp_path, Gateway)


@pytest.fixture
def start_websocket(tmp_path: Path) -> Iterator[Callable[..., WebsocketDaemon]]:
    yield from _started(tmp_path, WebsocketDaemon)


@pytest.fixture
def start_windowed(
    ctx: zmq.Context, start_websocket: Callable[..., WebsocketDaemon], tmp_path: Path
) -> Callable[..., tuple[zmq.Socket, WebsocketDaemon]]:
    """start(*extra_args) -> (a bus publisher, a ready fedmsg-websocket subscribed to it with its window in
    tmp_path/state, which a test may have prepared)."""

    def start(*args: str) -> tuple[zmq.Socket, WebsocketDaemon]:
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        pub, url = bus_publisher(ctx)
        daemon = start_websocket([url], "--state-dir", str(state), *args)
        wait_subscribed(pub)
        return pub, daemon

    return start


@pytest.fixture(params=[Gateway, WebsocketDaemon], ids=["gateway", "websocket"])
def start_daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Either daemon, for what both do alike."""
    yield from _started(tmp_path, request.param)


@pytest.fixture
def subscribed_daemon(start_daemon: Callable[..., Daemon], ctx: zmq.Context) -> tuple[zmq.Socket, Daemon]:
    """Either daemon, started on a bus publisher of the test's own and subscribed to it: from then on
    nothing the publisher sends is lost."""
    pub, url = bus_publisher(ctx)
    daemon = start_daemon([url])
    wait_subscribed(pub)
    return pub, daemon


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)
