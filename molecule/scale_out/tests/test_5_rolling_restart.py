"""playbooks/rolling_restart.yml restarts both gateways while subscribers keep receiving.

24 subscribers (one connection each) are spread over both gateways; haproxy's own session table
says which subscriber is on which. While the first gateway restarts, the subscribers of the other one
must never be cut and lose nothing; those of the restarted one are cut, reconnected by ZeroMQ through
haproxy to the live gateway, and must resume within seconds. Every message a subscriber misses must
fall inside one of its own outages. When each restart began comes from systemd on the gateway
(containers share the host's clock with the probe).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import testinfra
from conftest import GATEWAYS, PROBE, SCRATCH_INVENTORY
from kit.bundle import PROJECT
from kit.hosts import gateway_by_client_port, read_json
from kit.hosts import haproxy_servers as servers
from kit.probes import PUBLIC_URL as PUBLIC
from kit.probes import Background
from kit.scenario import EPHEMERAL_DIR
from kit.wait import wait_until
from testinfra.host import Host

testinfra_hosts = ["podman://app01"]

SUBSCRIBERS = 24
MAX_OUTAGE_S = 5.0
PROJECT_DIR = PROJECT


def gateway_pids() -> dict[str, str]:
    return {
        name: testinfra.get_host(f"podman://{name}").check_output(
            "systemctl show --property MainPID --value fedmsg-gateway"
        )
        for name in GATEWAYS
    }


def stop_began_at(gateway: str) -> float:
    """When systemd last began to stop fedmsg-gateway on GATEWAY (its restart), as a Unix time."""
    stamp = testinfra.get_host(f"podman://{gateway}").check_output(
        "systemctl show --timestamp=us+utc --property ActiveExitTimestamp --value fedmsg-gateway"
    )
    return datetime.strptime(stamp, "%a %Y-%m-%d %H:%M:%S.%f %Z").replace(tzinfo=UTC).timestamp()


def run_rolling_restart() -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "ANSIBLE_CONFIG"}
    env.update(ANSIBLE_ROLES_PATH=str(PROJECT_DIR / "roles"), ANSIBLE_LIBRARY=str(PROJECT_DIR / "library"))
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        # Molecule's inventory (connections, group_vars) plus the operator's edited one (busgateway02).
        "-i", str(EPHEMERAL_DIR / "inventory"),
        "-i", str(SCRATCH_INVENTORY / "hosts.yml"),
        str(PROJECT_DIR / "playbooks" / "rolling_restart.yml"),
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=400, check=False
    )


def outages(subscriber: dict[str, Any]) -> list[tuple[float, float]]:
    """(lost, re-established) for every disconnect; a disconnect never followed by a handshake fails."""
    result = []
    for lost in subscriber["disconnects"]:
        back = [t for t in subscriber["handshakes"] if t > lost]
        assert back, f"subscriber {subscriber['index']} lost its connection at {lost} and never got it back"
        result.append((lost, back[0]))
    return result


def unexplained_losses(subscriber: dict[str, Any]) -> list[int]:
    """Sequence numbers missing between two received messages whose gap overlaps none of its outages."""
    windows = [(lost - 1.0, back + 3.0) for lost, back in outages(subscriber)]
    received = subscriber["received"]
    missing = []
    for (seq, published, _), (next_seq, next_published, _) in itertools.pairwise(received):
        explained = any(start < next_published and published < end for start, end in windows)
        if next_seq > seq + 1 and not explained:
            missing.extend(range(seq + 1, next_seq))
    return missing


def test_rolling_restart_keeps_every_subscriber(host: Host, proxy: Host, background: Background) -> None:
    status_file = "/run/rolling-subscribers.json"
    host.run("rm -f %s", status_file)
    background(
        "rolling-subscribers",
        f"{PROBE} watch --subscribe {PUBLIC} --subscribers {SUBSCRIBERS} --status {status_file}",
    )

    def all_receiving() -> bool:
        status = read_json(host, status_file)
        return bool(status) and all(len(s["received"]) >= 3 for s in status["subscribers"])

    wait_until(all_receiving, "every subscriber to receive", interval=0.5)
    # haproxy's view, before anything restarts: which gateway each subscriber's session went to.
    on_gateway = gateway_by_client_port(proxy)
    status = read_json(host, status_file)
    membership = {s["index"]: on_gateway.get(s["ports"][0]) for s in status["subscribers"]}
    assert None not in membership.values(), f"sessions haproxy does not show: {membership}, {on_gateway}"
    assert set(membership.values()) == set(GATEWAYS), f"subscribers not on both gateways: {membership}"
    pids_before = gateway_pids()

    result = run_rolling_restart()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    time.sleep(4)
    host.check_output("systemctl stop rolling-subscribers")
    status = read_json(host, status_file)

    # Both gateways restarted, and both are back in rotation.
    pids_after = gateway_pids()
    assert all(pids_after[g] != pids_before[g] for g in GATEWAYS), (pids_before, pids_after)
    assert {row["status"] for row in servers(proxy).values()} == {"UP"}

    subscribers = status["subscribers"]
    for subscriber in subscribers:
        label = f"subscriber {subscriber['index']}"
        for lost, back in outages(subscriber):
            assert back - lost <= MAX_OUTAGE_S, f"{label} was cut for {back - lost:.1f} s"
            resumed = [r[2] for r in subscriber["received"] if r[2] > back]
            assert resumed, f"{label} received nothing after reconnecting"
            delay = resumed[0] - lost
            assert delay <= MAX_OUTAGE_S, f"{label} resumed {delay:.1f} s after the cut"
        assert unexplained_losses(subscriber) == [], f"{label} lost messages outside its outages"
        assert subscriber["received"][-1][2] > status["now"] - 3, f"{label} no longer receives"

    first, second = sorted(GATEWAYS, key=stop_began_at)
    first_stop, second_stop = stop_began_at(first), stop_began_at(second)
    for subscriber in subscribers:
        label = f"subscriber {subscriber['index']} (on {membership[subscriber['index']]})"
        if membership[subscriber["index"]] == first:
            # Cut by its own gateway's restart, and back within seconds (the outage checks above).
            assert any(first_stop <= t <= first_stop + MAX_OUTAGE_S for t in subscriber["disconnects"]), (
                f"{label} was not cut when {first} stopped at {first_stop:.1f}: {subscriber['disconnects']}"
            )
            continue
        # On the other gateway: never cut until that gateway's own restart, and nothing lost while
        # the first one restarted and its subscribers moved over.
        assert not [t for t in subscriber["disconnects"] if t < second_stop], f"{label} was cut early"
        sequence = [r[0] for r in subscriber["received"] if first_stop - 1 <= r[1] <= second_stop]
        assert len(sequence) >= 15, f"{label} received {len(sequence)} messages across {first}'s restart"
        assert sequence == list(range(sequence[0], sequence[0] + len(sequence))), (
            f"{label} lost messages while {first} restarted"
        )
