"""Process life cycle: systemd notifications, signals, start-up failures."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gateway_harness import TIMEOUT, Gateway, NotifyListener, free_port, run_to_exit

StartGateway = Callable[..., Gateway]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_0_quickly(start_gateway: StartGateway, signum: signal.Signals) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"])
    started = time.monotonic()
    gateway.process.send_signal(signum)
    assert gateway.process.wait(TIMEOUT) == 0
    assert time.monotonic() - started < 2.0
    assert gateway.notify.wait_for("STOPPING=1", timeout=1.0)
    assert f"stopping on {signum.name}" in gateway.stderr


def test_watchdog_pings_when_asked(start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"], WATCHDOG_USEC="200000")
    pings = 0
    deadline = time.monotonic() + TIMEOUT
    while pings < 3 and time.monotonic() < deadline:
        gateway.notify.states.clear()
        if gateway.notify.wait_for("WATCHDOG=1", timeout=1.0):
            pings += 1
    assert pings == 3


def test_no_watchdog_without_watchdog_usec(start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"])
    assert not gateway.notify.wait_for("WATCHDOG=1", timeout=1.5)


def test_logs_binds_and_endpoints(start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"])
    log = gateway.stderr
    assert f"INFO bound {gateway.url}" in log
    assert "INFO connecting to tcp://127.0.0.1:1" in log
    assert "INFO connecting to tcp://127.0.0.1:2" in log


def _run_until_exit(args: list[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    notify = NotifyListener()
    try:
        result = run_to_exit("fedmsg_gateway", *args, NOTIFY_SOCKET=notify.address)
        notify.wait_for("READY=1", timeout=0.2)
        return result, notify.states
    finally:
        notify.close()


@pytest.mark.parametrize("what", ["bind", "metrics"])
def test_address_in_use_fails_before_ready(what: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bind = f"tcp://127.0.0.1:{port if what == 'bind' else free_port()}"
        metrics = f"127.0.0.1:{port if what == 'metrics' else free_port()}"
        result, states = _run_until_exit(
            ["--endpoint", "tcp://127.0.0.1:1", "--bind", bind, "--metrics", metrics]
        )

    assert result.returncode == 1
    assert "READY=1" not in states
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1
    assert str(port) in errors[0]
    assert "in use" in errors[0]


def test_runs_without_metrics(tmp_path: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"], "--metrics", "")
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", gateway.metrics_port)) != 0
    assert gateway.stop() == 0
