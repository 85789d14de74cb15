"""Test harness: the daemon as a subprocess, bus publishers and public subscribers on loopback.

A module of its own (not conftest) so that its name cannot collide with other test directories' helpers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from fedmsg_gateway.check import parse_metrics

SRC = str(Path(__file__).resolve().parents[2] / "src")
# Upper bound for anything the tests wait for; generous because CI shares its cores with containers.
TIMEOUT = 10.0


def free_port() -> int:
    """An ephemeral port that was free a moment ago (the daemon needs a number, not tcp://...:*)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_with_src(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


class NotifyListener:
    """A NOTIFY_SOCKET in the abstract namespace collecting what the daemon tells systemd."""

    def __init__(self) -> None:
        self.name = f"fedmsg-gateway-test-{uuid.uuid4().hex}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + self.name)
        self.states: list[str] = []

    @property
    def address(self) -> str:
        return "@" + self.name

    def wait_for(
        self, state: str, timeout: float = TIMEOUT, alive: Callable[[], bool] = lambda: True
    ) -> bool:
        return self.wait_until(lambda line: line == state, timeout, alive) is not None

    def wait_until(
        self,
        wanted: Callable[[str], bool],
        timeout: float = TIMEOUT,
        alive: Callable[[], bool] = lambda: True,
    ) -> str | None:
        """The first line received (now or before) for which wanted(line) holds; None on timeout."""
        deadline = time.monotonic() + timeout
        while not (found := [line for line in self.states if wanted(line)]):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not alive():
                return None
            self._sock.settimeout(min(remaining, 0.1))
            try:
                self.states += self._sock.recv(4096).decode().splitlines()
            except TimeoutError:
                continue
        return found[0]

    def close(self) -> None:
        self._sock.close()


class Daemon:
    """One daemon subprocess (`python -m MODULE ARGS`) with its own notify socket and stderr log."""

    def __init__(self, tmp_path: Path, module: str, args: list[str], **env: str) -> None:
        self.notify = NotifyListener()
        self.stderr_path = tmp_path / f"{module}-{uuid.uuid4().hex[:8]}.log"
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=env_with_src(NOTIFY_SOCKET=self.notify.address, **env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_ready(self) -> None:
        ready = self.notify.wait_for("READY=1", alive=lambda: self.process.poll() is None)
        assert ready, f"no READY=1 (exit {self.process.poll()}): {self.stderr}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.notify.close()
        return self.process.returncode


class Gateway(Daemon):
    """The gateway with its own public port and metrics port."""

    def __init__(self, tmp_path: Path, endpoints: list[str], *args: str, **env: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        command = ["--bind", self.url, "--metrics", f"127.0.0.1:{self.metrics_port}"]
        for endpoint in endpoints:
            command += ["--endpoint", endpoint]
        super().__init__(tmp_path, "fedmsg_gateway", [*command, *args], **env)


def run_to_exit(module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m MODULE ARGS` from this checkout's src/ until it exits, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env_with_src(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def bus_publisher(ctx: zmq.Context, port: int | None = None) -> tuple[zmq.Socket, str]:
    """A bus publisher (XPUB, so the test sees the gateway's subscription arrive) on loopback.

    No send HWM: the tests send bursts faster than the gateway reads and must not lose any.
    """
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 0)
    if port is None:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
    else:
        # libzmq closes a listener asynchronously: a publisher "restarting" may find its port still busy.
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                pub.bind(f"tcp://127.0.0.1:{port}")
                break
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    return pub, f"tcp://127.0.0.1:{port}"


def wait_subscribed(pub: zmq.Socket) -> None:
    """Block until the gateway's subscribe-to-everything arrives: from then on nothing sent is lost."""
    assert pub.poll(TIMEOUT * 1000), "gateway never subscribed"
    assert pub.recv() == b"\x01"


def subscriber(ctx: zmq.Context, url: str, prefix: bytes = b"") -> zmq.Socket:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, prefix)
    sub.connect(url)
    return sub


WARMUP = b"warmup"


def join(pub: zmq.Socket, sub: zmq.Socket, topic: bytes = WARMUP) -> None:
    """Beat the slow joiner: publish `topic` warm-ups until the subscriber gets one."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        pub.send_multipart([topic, b"{}"])
        if sub.poll(50):
            return
    pytest.fail("subscriber never received a warm-up message")


def receive(sub: zmq.Socket, count: int, skip: bytes = WARMUP) -> list[list[bytes]]:
    """The next `count` messages whose topic does not start with `skip`."""
    messages: list[list[bytes]] = []
    while len(messages) < count:
        assert sub.poll(TIMEOUT * 1000), f"only {len(messages)} of {count} messages arrived"
        frames = sub.recv_multipart()
        if not frames[0].startswith(skip):
            messages.append(frames)
    return messages


def scrape(gateway: Gateway) -> dict[str, float]:
    """The daemon's fedmsg_gateway_* metrics, names without the prefix."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=TIMEOUT) as page:
        return parse_metrics(page.read().decode())


def relayed(samples: dict[str, float]) -> tuple[float, float]:
    """(received, sent) in messages whatever libzmq counts: every test message has 2 frames."""
    if "messages_received_total" in samples:
        return samples["messages_received_total"], samples["messages_sent_total"]
    return samples["frames_received_total"] / 2, samples["frames_sent_total"] / 2


def wait_metrics(gateway: Gateway, condition: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    """Scrape until `condition` holds (the daemon polls the proxy about once a second)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        samples = scrape(gateway)
        if condition(samples):
            return samples
        assert time.monotonic() < deadline, f"metrics never satisfied the condition: {samples}"
        time.sleep(0.1)
