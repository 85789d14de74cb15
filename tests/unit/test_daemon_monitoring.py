"""What both daemons tell their monitoring, read from the running daemons: Prometheus's process_* and
timestamp conventions, STATUS= for systemd, and journal priorities on stderr."""

from __future__ import annotations

import logging
import os
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from gateway_harness import (
    TIMEOUT,
    Daemon,
    Gateway,
    env_with_src,
    free_port,
    subscriber,
)

from fedmsg_gateway.check import parse_metrics
from fedmsg_gateway.journal import JournalFormatter

StartDaemon = Callable[..., Daemon]
# Below whatever the test runner has, and no default anywhere: the daemon must report this very value.
LOWERED_NOFILE = 1009
PREFIXES = {"fedmsg_gateway": "fedmsg_gateway_", "fedmsg_websocket": "fedmsg_websocket_"}


def page(daemon: Daemon) -> str:
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
        return answer.read().decode()


def own_samples(daemon: Daemon) -> dict[str, float]:
    """The daemon's own metrics (fedmsg_gateway_* or fedmsg_websocket_*), names without the prefix."""
    module = daemon.process.args[2]  # [python, -m, MODULE, ...]
    return parse_metrics(page(daemon), PREFIXES[module])


def received(samples: dict[str, float]) -> float:
    """Bus messages (or frames: the gateway on libzmq >= 4.3.5) the daemon received."""
    return samples.get("messages_received_total", samples.get("frames_received_total", 0))


def proc_limits_soft_nofile(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no 'Max open files' line")


def proc_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@pytest.fixture
def lowered_nofile() -> Iterator[int]:
    """Daemons started meanwhile inherit a soft open-files limit of LOWERED_NOFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOWERED_NOFILE, hard))
    try:
        yield LOWERED_NOFILE
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_process_metrics_describe_the_running_daemon(start_daemon: StartDaemon, lowered_nofile: int) -> None:
    launched = time.time()
    daemon = start_daemon(["tcp://127.0.0.1:1"])
    ready = time.time()
    pid = daemon.process.pid
    samples = parse_metrics(page(daemon), "process_")
    fds_now = len(os.listdir(f"/proc/{pid}/fd"))

    # Clock ticks are 10 ms: the start time can read a tick before the launch.
    assert launched - 0.05 <= samples["start_time_seconds"] <= ready
    assert samples["max_fds"] == proc_limits_soft_nofile(pid) == lowered_nofile
    # The scrape's own connection comes and goes: a few fds either way.
    assert abs(samples["open_fds"] - fds_now) <= 3
    assert samples["resident_memory_bytes"] == pytest.approx(proc_rss(pid), rel=0.2)
    assert samples["virtual_memory_bytes"] >= samples["resident_memory_bytes"]
    assert 0 < samples["cpu_seconds_total"] <= (time.time() - launched) * (os.cpu_count() or 1)


def test_open_fds_count_the_subscribers(start_gateway: Callable[..., Gateway], ctx: zmq.Context) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"])
    before = parse_metrics(page(gateway), "process_")["open_fds"]
    subscribers = [subscriber(ctx, gateway.url) for _ in range(40)]
    deadline = time.monotonic() + TIMEOUT
    while (after := parse_metrics(page(gateway), "process_")["open_fds"]) < before + 40:
        assert time.monotonic() < deadline, f"open_fds went from {before} to {after} with 40 subscribers"
        time.sleep(0.1)
    for sub in subscribers:
        sub.close(linger=0)


def test_every_family_has_help_and_type(start_daemon: StartDaemon) -> None:
    daemon = start_daemon(["tcp://127.0.0.1:1"])
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        lines = answer.read().decode().splitlines()
    # A family's HELP and TYPE name it without the sample's labels.
    names = [line.split()[0].partition("{")[0] for line in lines if not line.startswith("#")]
    for name in names:
        assert any(line.startswith(f"# HELP {name} ") for line in lines)
        kind = "counter" if name.endswith("_total") else "gauge"
        assert f"# TYPE {name} {kind}" in lines
    for name in ("open_fds", "max_fds", "resident_memory_bytes", "start_time_seconds", "cpu_seconds_total"):
        assert f"process_{name}" in names
    assert any(name.endswith("_last_message_timestamp_seconds") for name in names)


def test_last_message_timestamp_is_when_the_bus_last_delivered(
    subscribed_daemon: tuple[zmq.Socket, Daemon],
) -> None:
    pub, daemon = subscribed_daemon
    before = own_samples(daemon)
    started = parse_metrics(page(daemon), "process_")["start_time_seconds"]
    # Nothing yet: the start counts as the last message, as the age has always done.
    assert started <= before["last_message_timestamp_seconds"] <= time.time()

    sent = time.time()
    pub.send_multipart([b"org.fedoraproject.test.timestamp", b"{}"])
    deadline = time.monotonic() + TIMEOUT
    while received(after := own_samples(daemon)) == received(before):
        assert time.monotonic() < deadline, "the message never arrived"
        time.sleep(0.05)
    scraped = time.time()

    # The gateway notices a message when it polls its proxy's counters, once a second; the page rounds
    # to the millisecond.
    assert sent - 0.001 <= after["last_message_timestamp_seconds"] <= min(sent + 1.5, scraped)
    # The age beside it (the Nagios check reads it) says the same.
    assert after["last_message_age_seconds"] == pytest.approx(
        scraped - after["last_message_timestamp_seconds"], abs=1.5
    )


STATUS = re.compile(
    r"STATUS=(\d+) (subscribers|clients), (last bus message|no bus message since the start) (\d+) s ago"
)


def test_status_tells_systemd_who_is_connected_and_when_the_bus_last_delivered(
    subscribed_daemon: tuple[zmq.Socket, Daemon],
) -> None:
    pub, daemon = subscribed_daemon
    first = daemon.notify.wait_until(lambda line: line.startswith("STATUS="))
    assert first is not None, "no STATUS= after READY=1"
    match = STATUS.fullmatch(first)
    assert match, first
    assert match[1] == "0"
    assert match[3] == "no bus message since the start"

    pub.send_multipart([b"org.fedoraproject.test.status", b"{}"])
    # STATUS= is refreshed every 5 s.
    line = daemon.notify.wait_until(lambda line: "last bus message" in line, timeout=TIMEOUT)
    assert line is not None, f"STATUS= never mentioned the message: {daemon.notify.states}"
    match = STATUS.fullmatch(line)
    assert match, line
    assert int(match[4]) <= 6


def _stderr_of_failed_start(tmp_path: Path, module: str, on_journal: bool) -> str:
    """Start MODULE with its metrics address in use (an error, exit 1) and stderr in a file that is,
    or is not, the journal stream named by $JOURNAL_STREAM, as systemd would name it."""
    log = tmp_path / f"stderr-{on_journal}"
    bind = ("tcp://127.0.0.1:{}" if module == "fedmsg_gateway" else "127.0.0.1:{}").format(free_port())
    with log.open("wb") as stderr, socket.socket() as taken:
        status = os.fstat(stderr.fileno())
        stream = f"{status.st_dev}:{status.st_ino}" if on_journal else f"{status.st_dev}:0"
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics = f"127.0.0.1:{taken.getsockname()[1]}"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                module,
                "--endpoint",
                "tcp://127.0.0.1:1",
                "--metrics",
                metrics,
                "--bind",
                bind,
            ],
            env=env_with_src(JOURNAL_STREAM=stream),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            timeout=TIMEOUT,
            check=False,
        )
    assert result.returncode == 1
    return log.read_text()


@pytest.mark.parametrize("module", sorted(PREFIXES))
def test_logs_carry_journal_priorities_only_on_the_journal_stream(tmp_path: Path, module: str) -> None:
    journal = _stderr_of_failed_start(tmp_path, module, on_journal=True).splitlines()
    assert any(
        re.fullmatch(r"<3>cannot serve metrics on (http://)?127\.0\.0\.1:\d+(/metrics)?: .+", line)
        for line in journal
    ), journal
    assert any(line.startswith("<6>connecting to tcp://127.0.0.1:1") for line in journal), journal
    assert all(re.match(r"<[2-7]>", line) for line in journal), journal

    plain = _stderr_of_failed_start(tmp_path, module, on_journal=False).splitlines()
    assert any(line.startswith("ERROR cannot serve metrics on ") for line in plain), plain
    assert "INFO connecting to tcp://127.0.0.1:1" in plain
    assert not any(line.startswith("<") for line in plain), plain
    # A start-up failure is one line, not a traceback.
    assert not any("Traceback" in line for line in journal + plain)


def test_every_line_of_a_traceback_keeps_its_priority() -> None:
    logger = logging.getLogger("test_journal")
    try:
        raise RuntimeError("relay stopped\nsecond line")
    except RuntimeError:
        record = logger.makeRecord(
            "test_journal", logging.ERROR, __file__, 1, "relay failed", (), sys.exc_info()
        )
    lines = JournalFormatter("%(message)s").format(record).splitlines()
    assert lines[0] == "<3>relay failed"
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    warning = logger.makeRecord("test_journal", logging.WARNING, __file__, 1, "slow", (), None)
    debug = logger.makeRecord("test_journal", logging.DEBUG, __file__, 1, "scrape", (), None)
    assert JournalFormatter("%(message)s").format(warning) == "<4>slow"
    assert JournalFormatter("%(message)s").format(debug) == "<7>scrape"
