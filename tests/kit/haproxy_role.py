"""haproxy with the configuration roles/haproxy renders, the browser stream's TLS listen included, as a
local process: for the tests of that listen's limits and for bench/raw.py (render() for every bench).

The role's own template is rendered by bench/render-haproxy.yml (the role's defaults and vars, the
overrides given here), its certificate made by molecule/shared/files/make-test-ca, and haproxy runs in
the foreground from /usr/sbin, as root may run it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

from kit.haproxy_socket import CliError, query, servers, stat_rows

ROOT = Path(__file__).resolve().parents[2]
HAPROXY = shutil.which("haproxy", path="/usr/sbin:/usr/bin") or "haproxy"
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
MAKE_TEST_CA = ROOT / "molecule" / "shared" / "files" / "make-test-ca"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def render(workdir: Path, variables: dict[str, object], gateways: list[str]) -> Path:
    """WORKDIR/haproxy.cfg from roles/haproxy's template, as the role renders it (checked by haproxy -c):
    the role's defaults and vars, VARIABLES over them, GATEWAYS as the busgateway group."""
    inventory = workdir / "inventory.json"
    inventory.write_text(json.dumps({"busgateway": {"hosts": {gateway: {} for gateway in gateways}}}))
    (workdir / "vars.json").write_text(
        json.dumps({"bench_haproxy_cfg": str(workdir / "haproxy.cfg"), **variables})
    )
    quiet = {"ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    playbook = ANSIBLE_PLAYBOOK or "ansible-playbook"
    subprocess.run(
        [playbook, "-i", str(inventory), "-e", f"@{workdir / 'vars.json'}", "render-haproxy.yml"],
        cwd=ROOT / "bench",
        check=True,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ, **quiet),
    )
    return workdir / "haproxy.cfg"


class RoleHaproxy:
    """haproxy in front of GATEWAYS (addresses, every one with fedmsg-websocket on BACKEND_PORT).

    fedmsg-websockets listens with TLS on LISTEN_HOST:`self.port`; the certificate names LISTEN_HOST
    and comes from a CA made for this instance (`self.cafile`). `overrides` are role variables.
    """

    def __init__(
        self, workdir: Path, listen_host: str, gateways: list[str], backend_port: int, **overrides: object
    ) -> None:
        self.workdir = workdir
        self.host = listen_host
        self.port = free_port(listen_host)
        self.socket_path = str(workdir / "admin.sock")
        tls = workdir / "tls"
        subprocess.run([str(MAKE_TEST_CA), str(tls), "localhost", listen_host], check=True)
        self.cafile = str(tls / "ca.crt")
        # What the role writes to /etc/haproxy/fedmsg-websockets.pem: the chain, then the key.
        pem = tls / "server.pem"
        pem.write_text((tls / "server.crt").read_text() + (tls / "server.key").read_text())
        variables: dict[str, object] = {
            "haproxy_fedmsg_bind": f"{listen_host}:{free_port(listen_host)}",
            "haproxy_fedmsg_backend_ports": [free_port()],
            "haproxy_fedmsg_max_conn_per_source": 0,
            # Within this machine's 20000 fds (haproxy wants 2 per session of global maxconn).
            "haproxy_fedmsg_maxconn": 1000,
            "haproxy_websocket_maxconn": 2000,
            "haproxy_global_maxconn": 4000,
            "haproxy_stats_socket": self.socket_path,
            "haproxy_stats_socket_group": "root",
            "haproxy_stats_bind": f"127.0.0.1:{free_port()}",
            "haproxy_stats_password": "test-only",
            "haproxy_websocket_bind": f"{listen_host}:{self.port}",
            "haproxy_websocket_backend_port": backend_port,
            "haproxy_websocket_check_interval": "200ms",
            "haproxy_websocket_tls_certificate": (tls / "server.crt").read_text(),
            "haproxy_websocket_tls_key": (tls / "server.key").read_text(),
            "__haproxy_websocket_pem": str(pem),
        } | overrides
        render(workdir, variables, gateways)
        self.config = (workdir / "haproxy.cfg").read_text()
        self._log = (workdir / "haproxy.log").open("wb")
        command = [HAPROXY, "-db", "-f", str(workdir / "haproxy.cfg")]
        self.process = subprocess.Popen(command, stderr=self._log)

    def context(self) -> ssl.SSLContext:
        """A client TLS context trusting exactly this haproxy's test CA."""
        return ssl.create_default_context(cafile=self.cafile)

    def query(self, command: str) -> str:
        return query(self.socket_path, command)

    def wait_servers_up(self, count: int, timeout: float = 30) -> None:
        """Until COUNT servers of fedmsg-websockets pass their health check."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited: {(self.workdir / 'haproxy.log').read_text()}")
            try:
                rows = servers(stat_rows(self.query("show stat")), "fedmsg-websockets").values()
            except CliError:
                rows = []
            up = [row for row in rows if row["status"] == "UP"]
            if len(up) >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"fedmsg-websockets servers not UP after {timeout} s: {rows}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._log.close()
