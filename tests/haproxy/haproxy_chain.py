"""A real haproxy in front of real TCP listeners, for the Nagios check and the haproxy_stats module.

Kept out of conftest.py so test modules can import it by a name no other test directory uses.
haproxy runs from /usr/sbin/haproxy in master-worker mode with a master CLI socket, as Debian's
unit runs it (`-W -S`, plus `-db` to stay in the foreground), in a short temporary directory: a
Unix socket path must fit in 108 bytes, which pytest's tmp_path does not guarantee.
"""

from __future__ import annotations

import functools
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kit import haproxy_socket, wait
from kit.bundle import RAW_PROXY

HAPROXY = shutil.which("haproxy", path="/usr/sbin:/usr/bin") or "haproxy"
PROXY = RAW_PROXY
WAIT_SECONDS = 15.0
# A local haproxy answers within milliseconds: look often, give up sooner than in the containers.
wait_until = functools.partial(wait.wait_until, timeout=WAIT_SECONDS, interval=0.05)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def private_loopback() -> str:
    """A loopback address of this chain's own (Linux routes all of 127/8 to lo): no stray connection
    from elsewhere on a shared machine reaches it, so session counts can be exact."""
    return "127." + ".".join(str(secrets.randbelow(254) + 1) for _ in range(3))


class HoldingServer:
    """A gateway stand-in: accepts TCP connections and holds them open until the peer closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.held: set[socket.socket] = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            for key, _ in self.selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    conn, _ = sock.accept()
                    self.selector.register(conn, selectors.EVENT_READ)
                    self.held.add(conn)
                elif not sock.recv(4096):
                    # haproxy's health checks and closed client sessions end here.
                    self.selector.unregister(sock)
                    self.held.discard(sock)
                    sock.close()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.listener.close()
        self.selector.close()


@dataclass
class Haproxy:
    workdir: Path
    config: str
    process: subprocess.Popen[bytes] = field(init=False)

    @property
    def socket_path(self) -> str:
        return str(self.workdir / "admin.sock")

    @property
    def master_socket_path(self) -> str:
        return str(self.workdir / "master.sock")

    def start(self) -> None:
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(self.config)
        log = (self.workdir / "haproxy.log").open("wb")
        self.process = subprocess.Popen(
            [HAPROXY, "-W", "-S", self.master_socket_path, "-f", str(cfg), "-db"], stdout=log, stderr=log
        )
        wait_until(self.answers, "haproxy's stats socket")
        wait_until(
            lambda: len(self.workers_or_none() or []) == 1, "the first worker in the master's `show proc`"
        )

    def reload(self) -> None:
        """What `systemctl reload haproxy` does: SIGUSR2 to the master, which starts a new worker."""
        before = self.workers()
        self.process.send_signal(signal.SIGUSR2)
        wait_until(
            lambda: (self.workers_or_none() or before)[0] not in before, "a new worker after the reload"
        )
        new = self.workers()[0]
        wait_until(lambda: f"\nPid: {new}\n" in self.query("show info"), "the new worker on the stats socket")

    def workers(self) -> list[int]:
        """Worker pids from the master CLI's `show proc`: the current one first, then the old ones."""
        return haproxy_socket.workers(self.master_query("show proc"))

    def workers_or_none(self) -> list[int] | None:
        # While it forks a worker the master may refuse its CLI for a moment.
        try:
            return self.workers()
        except haproxy_socket.CliError:
            return None

    def master_query(self, command: str) -> str:
        return self.query(command, self.master_socket_path)

    def answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"haproxy exited {self.process.returncode}: {self.log()}")
        try:
            return self.query("show info").startswith("Name: HAProxy")
        except haproxy_socket.CliError:
            return False

    def log(self) -> str:
        return (self.workdir / "haproxy.log").read_text(errors="replace")

    def stop(self) -> None:
        if not hasattr(self, "process"):
            return  # never started
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def query(self, command: str, path: str | None = None) -> str:
        """One command on the stats socket (or another), its whole answer."""
        return haproxy_socket.query(path or self.socket_path, command)

    def stat(self, proxy: str, svname: str) -> dict[str, str]:
        rows = haproxy_socket.stat_rows(self.query("show stat"))
        return next(row for row in rows if row["pxname"] == proxy and row["svname"] == svname)

    def frontend_scur(self) -> int:
        return int(self.stat(PROXY, "FRONTEND")["scur"])

    def admin_bits(self, server: str) -> int:
        """srv_admin_state of one server, read independently of the module under test."""
        for line in self.query(f"show servers state {PROXY}").splitlines()[2:]:
            fields = line.split()
            if fields[3] == server:
                return int(fields[6])
        raise KeyError(server)

    def wait_servers_up(self, servers: list[str]) -> None:
        wait_until(
            lambda: all(self.stat(PROXY, name)["status"] == "UP" for name in servers),
            f"servers {servers} to pass their health checks",
        )


@dataclass
class Chain:
    """haproxy with `listen fedmsg-raw-zmq` in front of two holding servers."""

    haproxy: Haproxy
    listen_host: str
    listen_port: int
    servers: list[str]
    clients: list[socket.socket] = field(default_factory=list)
    # The holding servers behind the proxy: servers[0] and servers[2] on the first, servers[1] on the second.
    backends: list[HoldingServer] = field(default_factory=list)
    # Sessions left on old workers by reloads: the current worker's stats do not show them.
    on_old_workers: int = 0

    def open_sessions(self, total: int) -> None:
        """Open client connections until `total` are open, waiting until the current worker holds its own."""
        while len(self.clients) < total:
            self.clients.append(socket.create_connection((self.listen_host, self.listen_port), timeout=5))
        current = total - self.on_old_workers
        wait_until(lambda: self.haproxy.frontend_scur() == current, f"{current} frontend sessions")

    def reload(self) -> None:
        self.haproxy.reload()
        self.on_old_workers = len(self.clients)

    def close_sessions(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        wait_until(lambda: self.haproxy.frontend_scur() == 0, "all frontend sessions to close")


def render_config(
    socket_path: str,
    listen_host: str,
    listen_port: int,
    server_ports: list[int],
    *,
    listen_maxconn: int,
    global_maxconn: int,
    filler_backends: int,
) -> tuple[str, list[str]]:
    servers = [f"gw1:{server_ports[0]}", f"gw1:{server_ports[1]}", f"gw10:{server_ports[0]}"]
    server_lines = "".join(
        f"    server {name} 127.0.0.1:{name.split(':')[1]} check inter 500 rise 1 fall 2\n"
        for name in servers
    )
    # Unchecked servers on the discard port: they only make `show stat` long.
    filler = "".join(
        f"backend filler-backend-with-a-long-name-{n:04d}\n"
        + "".join(f"    server filler-server-{n:04d}-{s} 127.0.0.1:9\n" for s in range(3))
        for n in range(filler_backends)
    )
    config = f"""global
    maxconn {global_maxconn}
    stats socket {socket_path} mode 600 level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 1m
    timeout server 1m

{filler}
listen {PROXY}
    bind {listen_host}:{listen_port}
    mode tcp
    maxconn {listen_maxconn}
{server_lines}"""
    return config, servers


ChainFactory = Callable[..., Chain]
