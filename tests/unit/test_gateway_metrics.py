"""Metrics against a live daemon, and the Nagios plugin reading them."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import zmq
from gateway_harness import (
    TIMEOUT,
    Gateway,
    bus_publisher,
    free_port,
    relayed,
    run_to_exit,
    scrape,
    subscriber,
    wait_metrics,
    wait_subscribed,
)

from fedmsg_gateway.version import package_version

StartGateway = Callable[..., Gateway]


def test_counters_match_what_was_sent(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    pub, url = bus_publisher(ctx)
    gateway = start_gateway([url])
    wait_subscribed(pub)
    sent_bytes = 0
    for i in range(500):
        frames = [b"org.fedoraproject.test", b"y" * (i % 50)]
        pub.send_multipart(frames)
        sent_bytes += sum(map(len, frames))

    samples = wait_metrics(gateway, lambda s: relayed(s) == (500, 500))

    assert samples["up"] == 1
    assert samples["bytes_received_total"] == samples["bytes_sent_total"] == sent_bytes
    assert samples["last_message_age_seconds"] < 3


def test_subscriber_count_follows_connections(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"])
    assert scrape(gateway)["subscribers"] == 0
    subs = [subscriber(ctx, gateway.url) for _ in range(3)]
    wait_metrics(gateway, lambda s: s["subscribers"] == 3)
    subs.pop().close(linger=0)
    wait_metrics(gateway, lambda s: s["subscribers"] == 2)
    # A client that fails the ZMTP handshake (PUB talking to PUB) is not left counted.
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(gateway.url)
    time.sleep(0.5)
    pub.close(linger=0)
    wait_metrics(gateway, lambda s: s["subscribers"] == 2)


def test_other_paths_are_404(start_gateway: StartGateway) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"])
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/", timeout=TIMEOUT)
    assert error.value.code == 404


def _check(*args: str) -> tuple[int, str]:
    result = run_to_exit("fedmsg_gateway.check", "--timeout", "2", *args)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result
    return result.returncode, lines[0]


def test_check_ok_warning_critical(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    pub, url = bus_publisher(ctx)
    gateway = start_gateway([url])
    address = f"127.0.0.1:{gateway.metrics_port}"
    wait_subscribed(pub)
    pub.send_multipart([b"t", b"x"])
    wait_metrics(gateway, lambda s: relayed(s)[0] == 1)

    status, line = _check("--metrics", address)
    assert status == 0
    assert line.startswith("FEDMSG-GATEWAY OK - last message ")
    assert "'subscribers'=0;;;0" in line
    assert "_received'=" in line
    # No threshold given: the age is reported, never alerted.
    assert re.search(r"'last_message_age'=\d+\.\d{3}s;;;0$", line), line

    # The check judges the age the daemon exports, so wait on that, not on the clock.
    wait_metrics(gateway, lambda s: s["last_message_age_seconds"] > 1)
    # The guidelines' ranges: a plain 1 alerts above 1 s.
    status, line = _check("--metrics", address, "--warning", "1")
    assert (status, line.split(" - ")[0]) == (1, "FEDMSG-GATEWAY WARNING")
    status, line = _check("-m", address, "-w", "1", "-c", "1")
    assert (status, line.split(" - ")[0]) == (2, "FEDMSG-GATEWAY CRITICAL")
    assert line.endswith("s;1;1;0")
    # "1:" alerts below 1 s, "@1:3600" inside the range.
    assert _check("-m", address, "-w", "1:")[0] == 0
    status, line = _check("-m", address, "-c", "@1:3600")
    assert status == 2
    assert line.endswith("s;;@1:3600;0")


def test_check_dead_port_is_critical() -> None:
    status, line = _check("--metrics", f"127.0.0.1:{free_port()}")
    assert status == 2
    assert line.startswith("FEDMSG-GATEWAY CRITICAL - no answer")


@pytest.fixture
def garbage_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"fedmsg_gateway_up 1\nsomething else\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_check_unparsable_answer_is_unknown(garbage_server: str) -> None:
    status, line = _check("--metrics", garbage_server)
    assert status == 3
    assert line.startswith("FEDMSG-GATEWAY UNKNOWN - cannot parse")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--metrics", "nowhere"), "expected HOST:PORT"),
        (("-w", "ten"), "argument -w/--warning: invalid Range value: 'ten'"),
        (("-c", "9:1"), "argument -c/--critical: invalid Range value: '9:1'"),
        (("-t", "0"), "--timeout must be a positive number of seconds, not 0"),
    ],
)
def test_check_bad_arguments_are_unknown(args: tuple[str, ...], reason: str) -> None:
    status, line = _check(*args)
    assert status == 3
    assert line.startswith("FEDMSG-GATEWAY UNKNOWN - ")
    assert reason in line


def test_check_version_is_one_line() -> None:
    # The version this interpreter sees ("unknown" from a bare source tree); that it is pyproject's
    # where the distribution is installed, test_gateway_version.py asserts.
    result = run_to_exit("fedmsg_gateway.check", "-V")
    assert (result.returncode, result.stdout) == (0, f"check_fedmsg_gateway {package_version()}\n")


def test_check_peer_that_never_answers_is_unknown_within_the_timeout() -> None:
    # The port accepts (the kernel completes the handshake) and never sends a byte. The bound is loose
    # (interpreter start takes seconds on a loaded 2-core machine); without the timer the run would
    # hang until the harness kills it at 10 s.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        result = run_to_exit("fedmsg_gateway.check", "--metrics", address, "--timeout", "1")
        elapsed = time.monotonic() - started
    assert (result.returncode, result.stdout) == (
        3,
        f"FEDMSG-GATEWAY UNKNOWN - no complete answer from http://{address}/metrics within 1s\n",
    )
    assert elapsed < 8
