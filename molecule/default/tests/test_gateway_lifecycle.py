"""The gateway under real systemd: its watchdog, a stop under traffic, a frozen daemon replaced.

The daemon pings the watchdog while its relay runs; systemd must enforce the configured
WatchdogSec, never fire it while the relay is busy, and replace a daemon that stops pinging. A stop
must end cleanly (Result=success, well inside TimeoutStopSec) even while messages flow.
"""

import json
import re
import time
from collections.abc import Iterator

import pytest
from kit.hosts import main_pid, wait_until_gateways_up
from testinfra.host import Host

testinfra_hosts = ["podman://busgateway01"]

SERVICE = "fedmsg-gateway"
# What the probe floods the gateway with: ~50 MB through the whole chain.
LOAD = "fedmsg-chain-probe check --publish tcp://*:3001 --subscribe tcp://proxy01:9940 --count 20000"


CONFIG = "/etc/fedmsg-gateway/gateway.toml"
# Holds a TCP port on every address until stopped.
SQUAT = (
    "import socket, sys, time\ns = socket.create_server(('0.0.0.0', int(sys.argv[1])))\ntime.sleep(3600)\n"
)


PORT_TAKEN = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2).close()\n"
    "    print('taken')\n"
    "except OSError:\n"
    "    print('free')\n"
)


def journal(host: Host, cursor: str, *options: str) -> list[dict[str, str]]:
    """The service's journal entries after `cursor` (narrowed by journalctl OPTIONS), as JSON objects
    (PRIORITY among their fields)."""
    output = host.check_output(
        "journalctl --quiet -u %s --after-cursor %s -o json" + " %s" * len(options), SERVICE, cursor, *options
    )
    return [json.loads(line) for line in output.splitlines()]


def show(host: Host, prop: str, service: str = SERVICE) -> str:
    return host.check_output("systemctl show --property %s --value %s", prop, service)


def seconds(value: str) -> float:
    """systemd's µs properties (WatchdogUSec, TimeoutStopUSec) as printed: '10s', '1min 30s', '500ms'."""
    units = {"min": 60.0, "ms": 0.001, "us": 0.000001, "s": 1.0}
    total = 0.0
    for part in value.split():
        number = part.rstrip("minsu")
        total += float(number) * units[part[len(number) :]]
    return total


@pytest.fixture
def app(host: Host) -> Host:
    return host.get_host("podman://app01")


@pytest.fixture(autouse=True)
def gateway_back_in_rotation(host: Host) -> Iterator[None]:
    """Every test here may restart the daemon: later modules need it running and UP in haproxy."""
    yield
    host.run("systemctl start %s", SERVICE)
    wait_until_gateways_up(host.get_host("podman://proxy01"))


def test_the_configured_watchdog_is_in_force(host: Host, group_vars: dict) -> None:
    configured = group_vars["busgateway"]["fedmsg_gateway_watchdog_sec"]
    assert seconds(show(host, "WatchdogUSec")) == configured


def test_no_watchdog_restart_while_the_relay_is_busy(host: Host, app: Host) -> None:
    restarts, pid = show(host, "NRestarts"), main_pid(host, SERVICE)
    started = time.time()
    app.check_output(LOAD)
    # The load ran for longer than the watchdog allows a silent daemon, and pinging went on.
    assert time.time() - started > seconds(show(host, "WatchdogUSec"))
    assert (show(host, "NRestarts"), main_pid(host, SERVICE)) == (restarts, pid)


def test_stop_under_traffic_is_clean_and_prompt(host: Host, app: Host) -> None:
    # LOAD is this module's constant: its words are the unit's command line, not one quoted word.
    app.check_output(f"systemd-run --quiet --collect --unit fedmsg-test-load {LOAD}")
    try:
        time.sleep(2)  # the flood is under way
        started = time.monotonic()
        host.check_output("systemctl stop %s", SERVICE)
        took = time.monotonic() - started
    finally:
        app.run("systemctl stop fedmsg-test-load")
    # Result=success: the daemon exited by itself on SIGTERM; a stop that ran into TimeoutStopSec
    # would have been SIGKILLed and say "timeout". The bound is half of that timeout: the daemon
    # needs ~2 s at most to stop, so half leaves room for a loaded 2-core machine.
    assert (show(host, "Result"), show(host, "ExecMainStatus")) == ("success", "0")
    assert took < seconds(show(host, "TimeoutStopUSec")) / 2, f"stop took {took:.1f} s"


def test_a_frozen_daemon_is_replaced_by_the_watchdog(host: Host) -> None:
    restarts, pid = int(show(host, "NRestarts")), main_pid(host, SERVICE)
    since = int(time.time())
    host.check_output("kill -STOP %s", str(pid))
    try:
        # WatchdogSec, then TimeoutAbortSec for the SIGABRT a stopped process cannot act on, then SIGKILL.
        deadline = (
            time.monotonic() + seconds(show(host, "WatchdogUSec")) + seconds(show(host, "TimeoutAbortUSec"))
        )
        while int(show(host, "NRestarts")) == restarts or not host.service(SERVICE).is_running:
            assert time.monotonic() < deadline + 30, "systemd did not replace the frozen gateway"
            time.sleep(0.5)
    finally:
        host.run("kill -CONT %s", str(pid))
    assert main_pid(host, SERVICE) != pid
    journal = host.check_output("journalctl --quiet -u %s --since @%s", SERVICE, str(since))
    assert "Watchdog timeout" in journal, journal[-2000:]


STATUS_TEXT = {
    "fedmsg-gateway": re.compile(r"\d+ subscribers, last bus message \d+ s ago"),
    "fedmsg-websocket": re.compile(r"\d+ clients, last bus message \d+ s ago"),
}


@pytest.mark.parametrize("service", sorted(STATUS_TEXT))
def test_status_text_says_who_is_connected_and_how_fresh_the_bus_is(host: Host, service: str) -> None:
    # The demo publisher sends every 0.5 s; STATUS= is refreshed every 5 s (and a second after a start).
    deadline = time.monotonic() + 15
    while not STATUS_TEXT[service].fullmatch(text := show(host, "StatusText", service)):
        assert time.monotonic() < deadline, f"{service}'s StatusText: {text!r}"
        time.sleep(0.5)


def test_a_relay_failure_is_in_the_journal_at_priority_err(host: Host) -> None:
    """The daemon's failure is stored at priority err, its INFO lines (once it starts) at info: the
    journal's own PRIORITY field, parsed from the daemon's <N> prefixes, so `journalctl -p err` lists it."""
    bind = host.check_output(
        "python3 -c %s %s",
        "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['binds'][0])",
        CONFIG,
    )
    port = bind.rsplit(":", 1)[1]
    expected = f"cannot bind {bind}: Address already in use"
    cursor = host.check_output("journalctl --quiet -u %s -n 0 --show-cursor", SERVICE).split("cursor: ")[-1]
    host.check_output("systemctl stop %s", SERVICE)
    # Something else holds the public port: the relay cannot bind it and the daemon exits 1.
    host.check_output(
        "systemd-run --quiet --collect --unit fedmsg-test-squatter python3 -c %s %s", SQUAT, port
    )
    try:
        deadline = time.monotonic() + 10
        while host.run("python3 -c %s %s", PORT_TAKEN, port).stdout.strip() != "taken":
            assert time.monotonic() < deadline, f"nothing listens on :{port}"
            time.sleep(0.2)
        host.run("systemctl start %s", SERVICE)
        # systemd reports the failed start at once; journald may store the daemon's own stderr lines a
        # moment later: wait for them (bounded), then judge.
        deadline = time.monotonic() + 10
        everything = journal(host, cursor)
        while expected not in [entry["MESSAGE"] for entry in everything] and time.monotonic() < deadline:
            time.sleep(0.5)
            everything = journal(host, cursor)
    finally:
        # No more automatic restarts against the squatter, and no start limit left for the next start.
        host.run("systemctl stop %s", SERVICE)
        host.run("systemctl reset-failed %s", SERVICE)
        host.run("systemctl stop fedmsg-test-squatter")
    # journald took the <3> prefix as the line's priority (err) and stripped it from the message.
    mine = [entry for entry in everything if entry["MESSAGE"] == expected]
    assert mine, f"the daemon's error is not in its journal: {everything}"
    assert {entry["PRIORITY"] for entry in mine} == {"3"}, mine
    # What an operator types lists it among the errors (beside systemd's "Failed to start").
    errors = [entry["MESSAGE"] for entry in journal(host, cursor, "-p", "err")]
    assert expected in errors, errors
    # The failed start logged nothing else (the public port is its first bind). Started again, the
    # daemon's INFO lines reach the journal at their own priority.
    host.check_output("systemctl start %s", SERVICE)
    deadline = time.monotonic() + 10
    bound = [entry for entry in journal(host, cursor) if entry["MESSAGE"] == f"bound {bind}"]
    while not bound and time.monotonic() < deadline:
        time.sleep(0.5)
        bound = [entry for entry in journal(host, cursor) if entry["MESSAGE"] == f"bound {bind}"]
    assert bound, "no 'bound' line after the restart"
    assert {entry["PRIORITY"] for entry in bound} == {"6"}, bound
