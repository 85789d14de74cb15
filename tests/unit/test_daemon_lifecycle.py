"""What both daemons do alike as systemd services: the watchdog, start-up failures."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from gateway_harness import TIMEOUT, Daemon, NotifyListener, free_port, run_to_exit

StartDaemon = Callable[..., Daemon]


def test_watchdog_pings_when_asked(start_daemon: StartDaemon) -> None:
    daemon = start_daemon(["tcp://127.0.0.1:1"], WATCHDOG_USEC="200000")
    pings = 0
    deadline = time.monotonic() + TIMEOUT
    while pings < 3 and time.monotonic() < deadline:
        daemon.notify.states.clear()
        if daemon.notify.wait_for("WATCHDOG=1", timeout=1.0):
            pings += 1
    assert pings == 3


def test_a_notify_socket_that_went_away_does_not_stop_the_daemon(start_daemon: StartDaemon) -> None:
    """sd_notify's semantics: a lost notification is ignored. (A STATUS= or WATCHDOG=1 to a socket that
    no longer listens once stopped the daemon with ConnectionRefusedError.)"""
    daemon = start_daemon(["tcp://127.0.0.1:1"], WATCHDOG_USEC="200000")
    assert daemon.notify.wait_for("WATCHDOG=1", timeout=TIMEOUT)
    daemon.notify.close()
    # Several watchdog periods and a STATUS= refresh (notify.STATUS_INTERVAL) go to the closed socket.
    time.sleep(6)
    assert daemon.process.poll() is None, daemon.stderr
    assert "Traceback" not in daemon.stderr


# How each daemon spells its listen address.
BIND = {"fedmsg_gateway": "tcp://127.0.0.1:{}", "fedmsg_websocket": "127.0.0.1:{}"}


@pytest.mark.parametrize("module", sorted(BIND))
@pytest.mark.parametrize("what", ["bind", "metrics"])
def test_address_in_use_fails_before_ready(module: str, what: str) -> None:
    notify = NotifyListener()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bind = BIND[module].format(port if what == "bind" else free_port())
        metrics = f"127.0.0.1:{port if what == 'metrics' else free_port()}"
        args = ["--endpoint", "tcp://127.0.0.1:1", "--bind", bind, "--metrics", metrics]
        result = run_to_exit(module, *args, NOTIFY_SOCKET=notify.address)
    notify.wait_for("READY=1", timeout=0.2)
    notify.close()
    assert result.returncode == 1
    assert "READY=1" not in notify.states
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1
    assert str(port) in errors[0]
    assert "in use" in errors[0]
    assert "Traceback" not in result.stderr
