"""What the benchmarks share: the real daemon and the role's haproxy as local processes, /proc readings.

Imported by the scripts next to it (`python bench/X.py` puts bench/ on sys.path).
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import zmq

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SRC = str(ROOT / "src")
sys.path.insert(0, SRC)
sys.path.insert(0, str(ROOT / "tests"))
# kit.haproxy_socket reads haproxy with haproxy_cli, which lives with the NRPE plugins (as on pytest's path).
sys.path.insert(0, str(ROOT / "roles" / "nagios_nrpe" / "files"))

from kit.haproxy_role import render  # noqa: E402  (the role's haproxy.cfg, as the tests render it)
from kit.haproxy_socket import CliError, query  # noqa: E402

from fedmsg_gateway.check import parse_metrics  # noqa: E402  (the daemon's own parser, from src/)

HAPROXY = shutil.which("haproxy", path="/usr/sbin:/usr/bin") or "haproxy"
PROXY = "fedmsg-raw-zmq"
#: The most connections haproxy takes here: the host's hard nofile (20000) bounds it at ~2 x 9,900 fds.
HAPROXY_MAXCONN = 9800
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """An ephemeral port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_nofile() -> int:
    """Soft nofile up to the hard limit (children inherit it); returns it."""
    import resource  # noqa: PLC0415  (only the scripts that hold many connections need it)

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def start_daemon(
    module: str, args: list[str], stderr: int | None = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """`python -m MODULE ARGS` from src/ as a subprocess; returns once it told systemd READY=1."""
    name = f"{module}-bench-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        notify.settimeout(10)
        env = dict(os.environ, NOTIFY_SOCKET="@" + name)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
        process = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stderr=stderr)
        while b"READY=1" not in notify.recv(4096):
            pass
    return process


def start_gateway(
    endpoints: list[str],
    binds: list[str],
    metrics: str = "",
    stderr: int | None = subprocess.DEVNULL,
    *,
    config: Path | None = None,
    health: str = "",
) -> subprocess.Popen[bytes]:
    """The real gateway from src/ as a subprocess; returns once it is READY (ports bound).

    `config`: a TOML file for the keys the command line does not set (endpoints, binds, metrics and
    health given here win). `health`: the address of its /healthz (haproxy's check), "" for none.
    """
    command = ["--metrics", metrics, "--health", health]
    if config is not None:
        command += ["--config", str(config)]
    for url in endpoints:
        command += ["--endpoint", url]
    for url in binds:
        command += ["--bind", url]
    return start_daemon("fedmsg_gateway", command, stderr)


def _read_from(port: int, request: bytes, enough: Callable[[bytes], bool]) -> float:
    """Seconds from connecting to 127.0.0.1:`port` until what it sent satisfies `enough` (or it closed)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        received = b""
        while not enough(received) and (chunk := sock.recv(4096)):
            received += chunk
    return time.monotonic() - start


def greeting_seconds(port: int) -> float:
    """What the ZMTP check did: connect to the gateway's public port, wait for its 10-byte signature."""
    return _read_from(port, b"", lambda received: len(received) >= 10)


def healthz_seconds(port: int) -> float:
    """What haproxy's health check does: GET /healthz on the gateway's health port, until the answer ends."""
    request = b"GET /healthz HTTP/1.1\r\nHost: fedmsg-gateway\r\n\r\n"
    return _read_from(port, request, lambda received: False)


class GreetingProbe:
    """A health check's round trip, every `interval` s in a thread: by default the ZMTP greeting of the
    gateway's public `port`. Under load this is how close the check comes to its timeout.
    """

    def __init__(
        self, port: int, interval: float = 0.5, measure: Callable[[int], float] = greeting_seconds
    ) -> None:
        self.port, self.interval, self._measure = port, interval, measure
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.seconds.append(self._measure(self.port))

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return sorted(self.seconds)


def gateway_metrics(address: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return parse_metrics(response.read().decode())


class StandInHealth:
    """GET /healthz answered 200 from this process, for a relay without one (the plain zmq.proxy
    baseline), so that haproxy's health check passes for it as for the gateway."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Haproxy:
    """haproxy in the foreground with the configuration roles/haproxy renders (bench/render-haproxy.yml).

    Listens on 127.0.0.1:`port` in front of the gateway ports `backends` on 127.0.0.1, health-checked on
    `check_port` (the gateway's --health port), for at most `maxconn` connections; `overrides` are other
    role variables; `edit` rewrites the rendered text. The per-source limit is off by default: every bench
    client comes from 127.0.0.1.
    """

    def __init__(
        self,
        workdir: Path,
        backends: list[int],
        check_port: int,
        edit: Callable[[str], str] | None = None,
        *,
        maxconn: int = HAPROXY_MAXCONN,
        **overrides: object,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.socket_path = str(workdir / "admin.sock")
        variables: dict[str, object] = {
            "haproxy_fedmsg_bind": f"127.0.0.1:{self.port}",
            "haproxy_fedmsg_backend_ports": backends,
            "haproxy_fedmsg_check_port": check_port,
            # The global limit leaves room for the stats listener and the admin socket.
            "haproxy_fedmsg_maxconn": maxconn,
            "haproxy_global_maxconn": maxconn + 100,
            "haproxy_fedmsg_max_conn_per_source": 0,
            "haproxy_stats_socket": self.socket_path,
            "haproxy_stats_socket_group": "root",
            "haproxy_stats_bind": f"127.0.0.1:{free_port()}",
            "haproxy_stats_password": "bench-only",
            "haproxy_websocket_enabled": False,
        } | overrides
        render(workdir, variables, ["127.0.0.1"])
        self.config = (workdir / "haproxy.cfg").read_text()
        if edit is not None:
            # A variant of the role's configuration (bench/failover.py's other health checks).
            self.config = edit(self.config)
            (workdir / "haproxy.cfg").write_text(self.config)
        self._log = (workdir / "haproxy.log").open("wb")
        command = [HAPROXY, "-db", "-f", str(workdir / "haproxy.cfg")]
        self.process = subprocess.Popen(command, stderr=self._log)
        self._wait(lambda: self.stat("BACKEND")["status"] == "UP", "a gateway to pass the health check")

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _wait(self, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                sys.exit(f"haproxy exited: {(self.workdir / 'haproxy.log').read_text()}")
            try:
                if condition():
                    return
            except (OSError, CliError):  # CliError: its admin socket is not there yet
                pass
            if time.monotonic() > deadline:
                self.process.kill()  # a bench that gives up leaves no haproxy behind
                sys.exit(f"haproxy: timed out waiting for {what}")
            time.sleep(0.1)

    def query(self, command: str) -> str:
        return query(self.socket_path, command, timeout=10)

    def stat(self, svname: str) -> dict[str, str]:
        rows = csv.DictReader(self.query("show stat").removeprefix("# ").splitlines())
        return next(row for row in rows if row["pxname"] == PROXY and row["svname"] == svname)

    def sessions(self) -> int:
        return int(self.stat("FRONTEND")["scur"])

    def churn(self) -> dict[str, int]:
        """Counters that only move when sessions end or servers fail: read before and after a run."""
        rows = list(csv.DictReader(self.query("show stat").removeprefix("# ").splitlines()))
        ours = [row for row in rows if row["pxname"] == PROXY]
        servers = [row for row in ours if row["svname"] not in ("FRONTEND", "BACKEND")]
        frontend = next(row for row in ours if row["svname"] == "FRONTEND")
        return {
            "sessions_opened": int(frontend["stot"]),
            "failed_checks": sum(int(row["chkfail"] or 0) for row in servers),
            "server_down_transitions": sum(int(row["chkdown"] or 0) for row in servers),
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._log.close()


def statistics(control: zmq.Socket) -> list[int]:
    """The 8 counters of a zmq.proxy_steerable, asked over its control socket."""
    control.send(b"STATISTICS")
    return [struct.unpack("=Q", frame)[0] for frame in control.recv_multipart()]


class Steered:
    """zmq.proxy_steerable(frontend, backend) in a thread, with a PAIR to ask STATISTICS and TERMINATE."""

    def __init__(self, ctx: zmq.Context, frontend: zmq.Socket, backend: zmq.Socket) -> None:
        address = f"inproc://control-{uuid.uuid4().hex}"
        proxy_end = ctx.socket(zmq.PAIR)
        proxy_end.bind(address)
        self.control = ctx.socket(zmq.PAIR)
        self.control.connect(address)
        self._proxy_end = proxy_end
        self._thread = threading.Thread(
            target=zmq.proxy_steerable, args=(frontend, backend, None, proxy_end), daemon=True
        )
        self._thread.start()

    def bytes_in(self) -> int:
        return statistics(self.control)[1]

    def stop(self) -> None:
        self.control.send(b"TERMINATE")
        self._thread.join()
        self.control.close(linger=0)
        self._proxy_end.close(linger=0)


class Sink:
    """One XSUB with `subscribers` connections to `url`, counted by a C proxy into a dead end.

    C speed, so the sink is never what a benchmark measures; every message must have `size` bytes.
    """

    def __init__(self, ctx: zmq.Context, url: str, subscribers: int, size: int, monitor: str = "") -> None:
        self.subscribers = subscribers
        self.size = size
        self._xsub = ctx.socket(zmq.XSUB)
        self._xsub.setsockopt(zmq.RCVHWM, 0)
        self._xsub.setsockopt(zmq.LINGER, 0)
        if monitor:
            # Connection events to this inproc address; set up before the C proxy owns the socket.
            self._xsub.monitor(monitor, zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        for _ in range(subscribers):
            self._xsub.connect(url)
        # XSUB replays its subscriptions to every connection as it comes up.
        self._xsub.send(b"\x01")
        self._dead_end = ctx.socket(zmq.PUB)
        self._dead_end.setsockopt(zmq.LINGER, 0)
        self._proxy = Steered(ctx, self._xsub, self._dead_end)

    def deliveries(self) -> int:
        # Every message has the same size: bytes count deliveries whether libzmq counts frames or not.
        return self._proxy.bytes_in() // self.size

    def close(self) -> None:
        self._proxy.stop()
        self._xsub.close(linger=0)
        self._dead_end.close(linger=0)
