"""Helpers for the scale-out verifiers: the scenario's values, haproxy's stats socket, background probes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from testinfra.host import Host

SCENARIO_DIR = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).parent.parent))
EPHEMERAL_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
SCRATCH_INVENTORY = EPHEMERAL_DIR / "scratch-inventory"
PROXY = "fedmsg-raw-zmq"
PUBLIC = "tcp://proxy01:9940"
GATEWAYS = ("busgateway01", "busgateway02")
PROBE = "/usr/local/bin/fedmsg-session-probe"
Background = Callable[[str, str], None]

_SOCKET_SCRIPT = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock')\n"
    "s.sendall(sys.argv[1].encode()+b'\\n')\n"
    "out=b''\n"
    "while chunk := s.recv(65536): out += chunk\n"
    "sys.stdout.write(out.decode())\n"
)


@pytest.fixture(scope="session")
def group_vars() -> dict[str, dict[str, Any]]:
    with (SCENARIO_DIR / "molecule.yml").open() as config:
        return yaml.safe_load(config)["provisioner"]["inventory"]["group_vars"]


@pytest.fixture(scope="session")
def ports(group_vars: dict[str, dict[str, Any]]) -> list[int]:
    return group_vars["all"]["fedmsg_public_ports"]


@pytest.fixture(scope="session")
def proxy() -> Host:
    return testinfra.get_host("podman://proxy01")


@pytest.fixture(scope="session")
def app() -> Host:
    return testinfra.get_host("podman://app01")


def haproxy_command(proxy: Host, command: str) -> str:
    return proxy.check_output("python3 -c %s %s", _SOCKET_SCRIPT, command)


def stats(proxy: Host) -> dict[str, dict[str, str]]:
    """`show stat` rows of fedmsg-raw-zmq by svname (FRONTEND, BACKEND and every server)."""
    rows = csv.DictReader(io.StringIO(haproxy_command(proxy, "show stat").removeprefix("# ")))
    return {row["svname"]: row for row in rows if row["pxname"] == PROXY}


def servers(proxy: Host) -> dict[str, dict[str, str]]:
    return {name: row for name, row in stats(proxy).items() if name not in ("FRONTEND", "BACKEND")}


def sessions_per_gateway(proxy: Host) -> dict[str, int]:
    totals = dict.fromkeys(GATEWAYS, 0)
    for name, row in servers(proxy).items():
        totals[name.split(":")[0]] += int(row["scur"])
    return totals


def gateway_by_client_port(proxy: Host) -> dict[int, str]:
    """haproxy's own view of where each public session went: client port -> gateway host.

    From `show sess`: `src=ADDRESS:PORT` is the client's end, `srv=HOST:PORT` the server line.
    """
    sessions = {}
    for line in haproxy_command(proxy, "show sess").splitlines():
        match = re.search(r" src=\S+:(\d+) fe=" + PROXY + r" .* srv=([^:\s]+):", line)
        if match:
            sessions[int(match[1])] = match[2]
    return sessions


def set_gateway_state(proxy: Host, gateway: str, state: str) -> None:
    for name in servers(proxy):
        if name.startswith(gateway + ":"):
            assert haproxy_command(proxy, f"set server {PROXY}/{name} state {state}").strip() == ""


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def read_json(host: Host, path: str) -> dict[str, Any] | None:
    result = host.run("cat %s", path)
    return json.loads(result.stdout) if result.rc == 0 else None


@pytest.fixture
def background(app: Host) -> Iterator[Background]:
    """Start commands on app01 as transient systemd units; stop them after the test."""
    units: list[str] = []

    def start(unit: str, command: str) -> None:
        app.run("systemctl stop %s; systemctl reset-failed %s", unit, unit)
        app.check_output(f"systemd-run --unit {unit} --collect {command}")
        units.append(unit)

    yield start
    for unit in units:
        app.run("systemctl stop %s", unit)
