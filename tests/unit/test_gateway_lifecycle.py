"""Process life cycle: systemd notifications, signals, start-up failures."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq
from gateway_harness import (
    TIMEOUT,
    Gateway,
    bus_publisher,
    subscriber,
    wait_subscribed,
)

StartGateway = Callable[..., Gateway]


# What a stop must stay well inside: the unit's TimeoutStopSec (10 s), after which systemd SIGKILLs.
# The daemon's own stop is bounded at 3 x 0.5 s of thread joins; half the timeout leaves the rest
# for a loaded 2-core machine.
STOP_BOUND_S = 5.0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "relaying"])
def test_stop_signal_exits_0_promptly(
    start_gateway: StartGateway, ctx: zmq.Context, signum: signal.Signals, busy: bool
) -> None:
    pub, url = bus_publisher(ctx)
    gateway = start_gateway([url])
    if busy:
        wait_subscribed(pub)
        sub = subscriber(ctx, gateway.url)
        flood = threading.Event()
        sender = threading.Thread(target=_publish_until, args=(pub, flood), daemon=True)
        sender.start()
        assert sub.poll(TIMEOUT * 1000), "the flood does not reach the subscriber"
    started = time.monotonic()
    gateway.process.send_signal(signum)
    assert gateway.process.wait(TIMEOUT) == 0
    took = time.monotonic() - started
    if busy:
        flood.set()
        sender.join(TIMEOUT)
    assert took < STOP_BOUND_S, f"stop took {took:.1f} s"
    assert gateway.notify.wait_for("STOPPING=1", timeout=1.0)
    assert f"stopping on {signum.name}" in gateway.stderr


def _publish_until(pub: zmq.Socket, done: threading.Event) -> None:
    """~10k messages/s of 3 KB until DONE: busy, but not faster than the gateway drains (no HWM)."""
    body = b"x" * 3000
    while not done.is_set():
        for _ in range(10):
            pub.send_multipart([b"org.fedoraproject.test.flood", body])
        time.sleep(0.001)


def test_no_watchdog_without_watchdog_usec(start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"])
    assert not gateway.notify.wait_for("WATCHDOG=1", timeout=1.5)


def test_logs_binds_and_endpoints(start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"])
    log = gateway.stderr
    assert f"INFO bound {gateway.url}" in log
    assert "INFO connecting to tcp://127.0.0.1:1" in log
    assert "INFO connecting to tcp://127.0.0.1:2" in log


def test_runs_without_metrics(tmp_path: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"], "--metrics", "")
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", gateway.metrics_port)) != 0
    assert gateway.stop() == 0
