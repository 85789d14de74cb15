"""Shared helpers for the full-chain verifiers: the scenario's own variables and haproxy's stats socket."""

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from testinfra.host import Host

SCENARIO_DIR = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).parent.parent))
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", SCENARIO_DIR.parents[1]))
MOLECULE_INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE")
needs_molecule_inventory = pytest.mark.skipif(
    MOLECULE_INVENTORY is None, reason="needs Molecule's inventory (runs under `molecule verify`)"
)


def site_playbook(*args: str, extra_inventory: Path | None = None) -> tuple[int, dict[str, Any]]:
    """Run playbooks/site.yml, as operators do, on Molecule's inventory (plus EXTRA_INVENTORY).

    Returns the exit code and the JSON callback's report (plays, tasks, per-host results, stats).
    """
    inventories = ["-i", str(Path(MOLECULE_INVENTORY).parent)]
    if extra_inventory:
        inventories += ["-i", str(extra_inventory)]
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    env.pop("ANSIBLE_CONFIG", None)  # the project's ansible.cfg (cwd), as for operators
    command = [str(Path(sys.executable).parent / "ansible-playbook"), *inventories, *args]
    command.append(str(PROJECT / "playbooks" / "site.yml"))
    run = subprocess.run(
        command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    try:
        return run.returncode, json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible printed no JSON (exit {run.returncode}): {run.stdout[-2000:]}{run.stderr}")


def task_results(report: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(task name, host, result) for every task result of a JSON callback report."""
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                yield task["task"]["name"], host, result


@pytest.fixture(scope="session")
def group_vars() -> dict[str, dict[str, Any]]:
    """The values the scenario configured: what the running system must show."""
    with (SCENARIO_DIR / "molecule.yml").open() as config:
        return yaml.safe_load(config)["provisioner"]["inventory"]["group_vars"]


@pytest.fixture(scope="session")
def role_defaults() -> dict[str, dict[str, Any]]:
    """Each role's defaults/main.yml: what the system shows where the scenario overrides nothing."""
    roles = SCENARIO_DIR.parents[1] / "roles"
    defaults = roles.glob("*/defaults/main.yml")
    return {path.parent.parent.name: yaml.safe_load(path.read_text()) for path in defaults}


MASTER_SOCKET = "/run/haproxy/master.sock"


def haproxy_admin(host: Host, command: str, socket_path: str = "/run/haproxy/admin.sock") -> str:
    """One command on the live stats (or master) socket, its answer read to EOF (no socat in the image).

    The write side is shut after the command: the master CLI answers only then. Not strict UTF-8: a
    failed health check puts the gateway's raw (binary) answer into last_chk.
    """
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()+b'\\n')\n"
        "s.shutdown(socket.SHUT_WR)\n"
        "out=b''\n"
        "while chunk := s.recv(65536): out += chunk\n"
        "sys.stdout.write(out.decode(errors='replace'))\n"
    )
    return host.check_output("python3 -c %s %s %s", script, socket_path, command)


def haproxy_stats_rows(host: Host, socket_path: str = "/run/haproxy/admin.sock") -> list[dict[str, str]]:
    """`show stat` from the live stats socket as CSV rows."""
    output = haproxy_admin(host, "show stat", socket_path)
    return list(csv.DictReader(io.StringIO(output.removeprefix("# "))))


def wait_until_gateways_up(proxy: Host, proxy_name: str = "fedmsg-raw-zmq", timeout: float = 30) -> None:
    """Until haproxy on PROXY marks every server of PROXY_NAME UP (after a restart: its rise checks)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [row for row in haproxy_stats_rows(proxy) if row["pxname"] == proxy_name]
        servers = {
            row["svname"]: row["status"] for row in rows if row["svname"] not in ("FRONTEND", "BACKEND")
        }
        if servers and set(servers.values()) == {"UP"}:
            return
        assert time.monotonic() < deadline, (
            f"{proxy_name} servers not all UP after {timeout:.0f} s: {servers}"
        )
        time.sleep(0.5)


def haproxy_workers(host: Host) -> list[int]:
    """Pids of haproxy's live workers (`show proc` on the master CLI): the current one, then old ones."""
    lines = haproxy_admin(host, "show proc", MASTER_SOCKET).splitlines()
    return [int(line.split()[0]) for line in lines if not line.startswith("#") and " worker " in line]


def frontend_sessions(host: Host, proxy: str = "fedmsg-raw-zmq") -> int:
    """The proxy's sessions on every worker: after a reload the old ones keep theirs."""
    total = 0
    for pid in haproxy_workers(host):
        rows = csv.DictReader(
            io.StringIO(haproxy_admin(host, f"@!{pid} show stat", MASTER_SOCKET).removeprefix("# "))
        )
        total += sum(
            int(row["scur"]) for row in rows if row["pxname"] == proxy and row["svname"] == "FRONTEND"
        )
    return total


def main_pid(host: Host, service: str) -> int:
    pid = int(host.check_output("systemctl show --property MainPID --value %s", service))
    assert pid > 0, f"{service} has no main process"
    return pid


def nofile_limits(host: Host, pid: int) -> tuple[int, int]:
    """(soft, hard) 'Max open files' of a running process: the limit that really took effect."""
    for line in host.file(f"/proc/{pid}/limits").content_string.splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no 'Max open files' in /proc/{pid}/limits")


class Heartbeats:
    """A public subscriber on app01, through proxy01:9940, printing the demo publisher's messages.

    The demo publisher numbers its messages ("i") and sends one every 0.5 s: the numbers this
    subscriber printed show whether the stream flows, and whether any message went missing.
    """

    UNIT = "fedmsg-test-heartbeats"
    SEQUENCE = re.compile(r'"i": (\d+)')

    def __init__(self, app: Host) -> None:
        self.app = app
        app.check_output(
            "systemd-run --quiet --collect --unit %s fedmsg-chain-probe tail"
            " --subscribe tcp://proxy01:9940 --prefix org.fedoraproject.dev.demo --count 1000000",
            self.UNIT,
        )
        # This run's output only: the journal keeps earlier runs of the same unit name.
        self.invocation = app.check_output("systemctl show --property InvocationID --value %s", self.UNIT)

    def received(self) -> list[int]:
        query = "journalctl --quiet -o cat _SYSTEMD_INVOCATION_ID=%s"
        lines = self.app.check_output(query, self.invocation).splitlines()
        return [int(match.group(1)) for line in lines if (match := self.SEQUENCE.search(line))]

    def wait_for_more(self, count: int, timeout: float = 30) -> list[int]:
        """Until `count` more messages than now have arrived; everything received by then."""
        received = self.received()
        target = (received[-1] if received else 0) + count
        deadline = time.monotonic() + timeout
        while not received or received[-1] < target:
            assert time.monotonic() < deadline, f"the subscriber stalled at {received[-1:]}"
            time.sleep(0.5)
            received = self.received()
        return received

    def stop(self) -> None:
        self.app.run("systemctl stop %s", self.UNIT)


@pytest.fixture
def heartbeats(host: Host) -> Iterator[Heartbeats]:
    """An established public subscriber that has received at least one message."""
    subscriber = Heartbeats(host.get_host("podman://app01"))
    try:
        subscriber.wait_for_more(1)
        yield subscriber
    finally:
        subscriber.stop()
