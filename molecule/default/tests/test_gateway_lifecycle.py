"""The gateway under real systemd: its watchdog, a stop under traffic, a frozen daemon replaced.

The daemon pings the watchdog while its relay runs; systemd must enforce the configured
WatchdogSec, never fire it while the relay is busy, and replace a daemon that stops pinging. A stop
must end cleanly (Result=success, well inside TimeoutStopSec) even while messages flow.
"""

import time
from collections.abc import Iterator

import pytest
from kit.hosts import main_pid, wait_until_gateways_up
from testinfra.host import Host

testinfra_hosts = ["podman://busgateway01"]

SERVICE = "fedmsg-gateway"
# What the probe floods the gateway with: ~50 MB through the whole chain.
LOAD = "fedmsg-chain-probe check --publish tcp://*:3001 --subscribe tcp://proxy01:9940 --count 20000"


def show(host: Host, prop: str) -> str:
    return host.check_output("systemctl show --property %s --value %s", prop, SERVICE)


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
