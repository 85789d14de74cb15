"""/healthz, what haproxy checks: served by the daemon outside libzmq's I/O thread; io_threads."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq
from gateway_harness import (
    TIMEOUT,
    Gateway,
    NotifyListener,
    bus_publisher,
    free_port,
    join,
    receive,
    run_to_exit,
    subscriber,
    wait_subscribed,
)
from kit.wait import wait_until

from fedmsg_gateway import health

StartGateway = Callable[..., Gateway]


def _get(port: int, path: str = "/healthz", timeout: float = TIMEOUT) -> tuple[int, str, str]:
    """(status, body, Cache-Control) of GET http://127.0.0.1:PORT/PATH."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as page:
            return page.status, page.read().decode(), page.headers["Cache-Control"]
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers["Cache-Control"]


def test_healthz_is_ok_while_the_relay_runs(start_gateway: StartGateway) -> None:
    port = free_port()
    gateway = start_gateway(["tcp://127.0.0.1:1"], "--health", f"127.0.0.1:{port}")
    # READY=1 comes after the first answer is possible, not necessarily after it: allow the first poll.
    deadline = time.monotonic() + TIMEOUT
    while (answer := _get(port))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert answer == (200, "ok\n", "no-store")
    assert _get(port, "/metrics")[0] == 404
    assert f"INFO health check on http://127.0.0.1:{port}/healthz" in gateway.stderr


def test_healthz_on_every_address(start_gateway: StartGateway) -> None:
    """*:PORT binds every IPv4 address, as tcp://*:PORT does for the public socket."""
    port = free_port()
    start_gateway(["tcp://127.0.0.1:1"], "--health", f"*:{port}")
    with socket.create_connection(("127.0.0.2", port), timeout=TIMEOUT):
        pass


def test_no_health_port_unless_asked(start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"])
    assert "health check" not in gateway.stderr


def test_frozen_daemon_does_not_answer_then_carries_on(start_gateway: StartGateway) -> None:
    """SIGSTOP (as `podman pause`): the kernel still accepts, nothing answers: haproxy's check times out.
    SIGCONT (`podman unpause`): the same process answers again, and the check it left unanswered
    leaves no traceback in the journal."""
    port = free_port()
    gateway = start_gateway(["tcp://127.0.0.1:1"], "--health", f"127.0.0.1:{port}")
    assert _get(port)[0] in (200, 503)
    os.kill(gateway.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError):
            _get(port, timeout=1)
    finally:
        os.kill(gateway.process.pid, signal.SIGCONT)
    # Until 2026-12 the wait for SIGTERM read CPython's uninitialised sigtimedwait result after SIGCONT
    # as a signal and the daemon died of it: systemd restarted it, dropping every subscriber.
    assert _get(port)[0] in (200, 503)
    time.sleep(1)  # the traceback of either old defect came within a second
    assert gateway.stop() == 0, gateway.stderr
    assert "Traceback" not in gateway.stderr


@pytest.mark.parametrize(
    ("alive", "answered_at", "expected"),
    [
        (True, 99.0, None),
        (True, 100.0 - health.MAX_SILENCE, None),
        (True, 90.0, "the proxy loop has not answered for 10.0 s"),
        (True, None, "the proxy loop has not answered yet"),
        (False, 99.0, "relay stopped"),
    ],
)
def test_problem(alive: bool, answered_at: float | None, expected: str | None) -> None:
    # A stuck proxy loop cannot be provoked from outside the process: its verdict, as a function.
    assert health.problem(alive, answered_at, now=100.0) == expected


def test_health_port_in_use_fails_before_ready() -> None:
    notify = NotifyListener()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--endpoint", "tcp://127.0.0.1:1", "--bind", f"tcp://127.0.0.1:{free_port()}"]
        args += ["--metrics", f"127.0.0.1:{free_port()}", "--health", f"127.0.0.1:{port}"]
        result = run_to_exit("fedmsg_gateway", *args, NOTIFY_SOCKET=notify.address)
    notify.wait_for("READY=1", timeout=0.2)
    notify.close()
    assert result.returncode == 1
    assert "READY=1" not in notify.states
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == [
        f"ERROR cannot serve health check on http://127.0.0.1:{port}/healthz: Address already in use"
    ]


def _io_threads(pid: int, expected: int) -> list[str]:
    """The names of the daemon's libzmq I/O threads, once `expected` of them are named: each thread names
    itself when it starts, which may be just after the daemon said READY."""

    def named() -> list[str]:
        names = [Path(task, "comm").read_text().strip() for task in Path(f"/proc/{pid}/task").iterdir()]
        return sorted(name for name in names if name.startswith("ZMQbg/IO"))

    wait_until(lambda: len(named()) >= expected, f"{expected} named libzmq I/O threads", timeout=TIMEOUT)
    return named()


def test_io_threads_relay(start_gateway: StartGateway, ctx: zmq.Context, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("io_threads = 2\n")
    pub, url = bus_publisher(ctx)
    gateway = start_gateway([url], "--config", str(config))
    # libzmq names its I/O threads (since 4.3): two of them, where the default has one.
    assert _io_threads(gateway.process.pid, 2) == ["ZMQbg/IO/0", "ZMQbg/IO/1"]
    wait_subscribed(pub)
    subs = [subscriber(ctx, gateway.url) for _ in range(4)]
    for sub in subs:
        join(pub, sub)
    for i in range(100):
        pub.send_multipart([b"org.fedoraproject.test", str(i).encode()])
    for sub in subs:
        assert [frames[1] for frames in receive(sub, 100)] == [str(i).encode() for i in range(100)]


def test_one_io_thread_by_default(start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"])
    assert _io_threads(gateway.process.pid, 1) == ["ZMQbg/IO/0"]
