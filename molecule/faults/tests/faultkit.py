"""Host-side clients of the containerised chain for the fault and abuse tests, and what they measured.

Subscribers run on the test host and connect to proxy01:9940 over the podman network, like public
clients. The numbered publisher on app01 (molecule/shared/files/fedmsg-seq-publisher) stamps every
message with its start time, a sequence number and CLOCK_MONOTONIC, which the containers share with
the host.
A module of its own (not conftest) so that its name collides with no other test directory's.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import haproxy_cli
import zmq
import zmq.utils.monitor

# The benchmarks' C-speed counting subscriber (bench/ is on pytest's pythonpath, pyproject.toml).
from benchlib import Sink
from kit.bundle import RAW_PROXY, STATS_SOCKET
from kit.wait import wait_until

HEADER = struct.Struct("=qqq")  # publisher start (ns), sequence, CLOCK_MONOTONIC ns at send
TOPIC = b"org.fedoraproject.prod.faults.sequence"
SIZE = 3000
PROXY = RAW_PROXY
REPORT = Path(os.environ.get("FAULTS_REPORT", "/tmp/fedmsg-faults-report.json"))  # noqa: S108
RATE = 20.0  # the numbered publisher's rate (prepare.yml)


def podman(*args: str, check: bool = True) -> str:
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True).stdout


def container_ip(name: str) -> str:
    return podman(
        "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name
    ).strip()


@dataclass
class Arrival:
    at: float  # host CLOCK_MONOTONIC, s
    epoch: int
    sequence: int
    latency_ms: float


@dataclass
class Client:
    sock: zmq.Socket
    arrivals: list[Arrival] = field(default_factory=list)
    foreign: int = 0  # messages that did not come from the numbered publisher or the demo one

    def since(self, start: float) -> list[Arrival]:
        return [a for a in self.arrivals if a.at >= start]


class Watch:
    """`tracked` SUB clients read in a thread (every arrival kept), `bulk` connections counted at C speed."""

    def __init__(self, url: str, tracked: int = 20, bulk: int = 0) -> None:
        self.ctx = zmq.Context()
        self.ctx.set(zmq.MAX_SOCKETS, 4096)
        self.url = url
        self.clients = [self._subscriber() for _ in range(tracked)]
        self.events = {"connected": 0, "disconnected": 0}
        self._monitor_address = f"inproc://faults-monitor-{uuid.uuid4().hex}"
        self.sink = Sink(self.ctx, url, bulk, SIZE, self._monitor_address) if bulk else None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _subscriber(self) -> Client:
        sock = self.ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(self.url)
        return Client(sock)

    def _run(self) -> None:
        poller = zmq.Poller()
        for client in self.clients:
            poller.register(client.sock, zmq.POLLIN)
        monitor = None
        if self.sink is not None:
            monitor = self.ctx.socket(zmq.PAIR)
            monitor.connect(self._monitor_address)
            poller.register(monitor, zmq.POLLIN)
        by_socket = {client.sock: client for client in self.clients}
        while not self._stop.is_set():
            for sock, _ in poller.poll(100):
                if sock is monitor:
                    event = zmq.utils.monitor.parse_monitor_message(monitor.recv_multipart())["event"]
                    name = "connected" if event == zmq.EVENT_CONNECTED else "disconnected"
                    self.events[name] += 1
                    continue
                topic, body = sock.recv_multipart()
                now = time.monotonic_ns()
                client = by_socket[sock]
                with self._lock:
                    if topic == TOPIC:
                        epoch, sequence, sent = HEADER.unpack_from(body)
                        client.arrivals.append(Arrival(now / 1e9, epoch, sequence, (now - sent) / 1e6))
                    elif not topic.startswith(b"org.fedoraproject.dev.demo"):
                        client.foreign += 1
        if monitor is not None:
            monitor.close(linger=0)

    def wait_receiving(self, timeout: float = 60) -> float:
        """Until every tracked client has received a numbered message in the last second."""

        def receiving() -> bool:
            now = time.monotonic()
            with self._lock:
                return all(c.arrivals and now - c.arrivals[-1].at < 1 for c in self.clients)

        return wait_until(receiving, "every tracked client to receive", timeout)

    def deliveries(self) -> int:
        return self.sink.deliveries() if self.sink is not None else 0

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.sink is not None:
            self.sink.close()
        for client in self.clients:
            client.sock.close(linger=0)
        self.ctx.destroy(linger=0)


@dataclass
class Outcome:
    """What the tracked clients saw around a fault at `start`, up to `end`."""

    affected: int  # clients with a gap in their stream
    clients: int
    worst_gap_s: float  # longest time without a message: "until clients receive again"
    lost_max: int  # messages one client missed (same publisher instance)
    lost_total: int
    latency_p50_ms: float
    latency_p99_ms: float

    def row(self) -> dict[str, float | int]:
        return self.__dict__.copy()


def outcome(watch: Watch, start: float, end: float, gap: float = 0.5) -> Outcome:
    """Gaps and losses per tracked client within [start - 1 s, end]."""
    affected, worst, lost, latencies = 0, 0.0, [], []
    with watch._lock:
        windows = [[a for a in c.arrivals if start - 1 <= a.at <= end] for c in watch.clients]
    for arrivals in windows:
        assert arrivals, "a tracked client received nothing around the fault"
        gaps = [b.at - a.at for a, b in itertools.pairwise(arrivals)]
        longest = max([*gaps, end - arrivals[-1].at])
        affected += longest > gap
        worst = max(worst, longest)
        missing = 0
        for a, b in itertools.pairwise(arrivals):
            if a.epoch == b.epoch:
                missing += max(0, b.sequence - a.sequence - 1)
        lost.append(missing)
        latencies += [a.latency_ms for a in arrivals]
    latencies.sort()
    return Outcome(
        affected,
        len(windows),
        round(worst, 2),
        max(lost),
        sum(lost),
        round(latencies[len(latencies) // 2], 1),
        round(latencies[int(len(latencies) * 0.99)], 1),
    )


def record(name: str, result: dict[str, object]) -> None:
    """Keep a figure for docs/reliability.md: printed now, and merged into REPORT."""
    print(f"\nFIGURE {name}: {json.dumps(result)}")
    figures = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    figures[name] = result
    REPORT.write_text(json.dumps(figures, indent=1))


# A loop inside proxy01 around the bundle's reader of haproxy's sockets (haproxy_cli): argv is the
# stats socket and the proxy.
_STATES = "\n".join(
    [
        inspect.getsource(haproxy_cli),
        """
import sys
while True:
    rows = proxy_rows(query(sys.argv[1], "show stat", time.monotonic() + 5), sys.argv[2])
    now = time.monotonic()
    for r in rows.values():
        if r["svname"] not in ("FRONTEND", "BACKEND"):
            status = r["status"].replace(" ", "_")
            print(now, r["svname"], status, r["chkfail"] or 0, r["scur"], r["stot"], flush=True)
    time.sleep(0.05)
""",
    ]
)


@dataclass(frozen=True)
class State:
    at: float  # CLOCK_MONOTONIC, shared by the containers and the host
    status: str  # UP, DOWN, UP_1/2 (a check failed), ...
    failed_checks: int
    sessions: int
    sessions_total: int


class ServerStates:
    """haproxy's view of every fedmsg-raw-zmq server every 50 ms, read by a loop inside proxy01 (no
    exec per reading), stamped with CLOCK_MONOTONIC there: when a check first failed, when DOWN came."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            ["podman", "exec", "-i", "proxy01", "python3", "-u", "-c", _STATES, STATS_SOCKET, PROXY],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.states: dict[str, list[State]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_until(lambda: len(self.states) > 0, "haproxy's server states", 30)

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            at, server, status, failed, sessions, total = line.split()
            with self._lock:
                self.states.setdefault(server, []).append(
                    State(float(at), status, int(failed), int(sessions), int(total))
                )

    def latest(self, server: str) -> State:
        with self._lock:
            return self.states[server][-1]

    def first(self, server: str, since: float, condition: Callable[[State], bool]) -> float | None:
        """The first reading at or after `since` that meets `condition`: its time, or None."""
        with self._lock:
            return next((s.at for s in self.states[server] if s.at >= since and condition(s)), None)

    def first_state(self, server: str, since: float) -> State:
        """The first reading at or after `since`."""
        with self._lock:
            return next(s for s in self.states[server] if s.at >= since)

    def wait(self, server: str, since: float, condition: Callable[[State], bool], what: str) -> float:
        """Seconds from `since` until `condition` first held (fails the test after 60 s)."""
        wait_until(lambda: self.first(server, since, condition) is not None, what, 60)
        found = self.first(server, since, condition)
        assert found is not None
        return found - since

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._thread.join(5)


def gateway_rss_kib(name: str) -> int:
    pid = int(podman("exec", name, "systemctl", "show", "--property", "MainPID", "--value", "fedmsg-gateway"))
    line = podman("exec", name, "grep", "VmRSS", f"/proc/{pid}/status")
    return int(line.split()[1])
