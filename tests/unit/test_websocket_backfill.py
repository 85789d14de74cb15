"""Back-fill between two real fedmsg-websocket daemons on loopback, each with its own window on disk.

A and B subscribe to the same bus publisher; B names A as its peer. B is stopped while messages flow
and started again: it must answer /raw for the time it was away exactly like A. A peer that does not
answer, or no peer at all, leaves the gap, logged and exported as unfilled seconds, and the daemon
answers with what it has.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from gateway_harness import TIMEOUT, bus_publisher, free_port, run_to_exit
from kit.raw import every_page
from websocket_harness import WebsocketDaemon, http_get

TOPIC = "org.fedoraproject.prod.backfill.test"


def start(tmp_path: Path, name: str, endpoint: str, peers: list[str]) -> WebsocketDaemon:
    state = tmp_path / name
    state.mkdir(exist_ok=True)
    config = tmp_path / f"{name}.toml"
    config.write_text(f"endpoints = [{json.dumps(endpoint)}]\npeers = {json.dumps(peers)}\n")
    daemon = WebsocketDaemon(tmp_path, [], "--config", str(config), "--state-dir", str(state))
    daemon.wait_ready()
    return daemon


def publish(pub: zmq.Socket, first: int, count: int, rate: float = 100) -> None:
    for index in range(first, first + count):
        body = {"i": index, "msg_id": f"2026-{index:08d}", "timestamp": int(time.time()), "topic": TOPIC}
        pub.send_multipart([TOPIC.encode(), json.dumps(body).encode()])
        time.sleep(1 / rate)


def raw_all(daemon: WebsocketDaemon, since: int) -> list[dict]:
    """Every message /raw serves from SINCE on, oldest first, page by page."""
    until = int(time.time()) + 10

    def fetch(page: int) -> dict:
        query = {"start": since, "end": until, "order": "asc", "rows_per_page": 100, "page": page}
        status, _, answer = http_get(f"{daemon.http}/raw?{urllib.parse.urlencode(query)}")
        assert status == 200, answer
        return json.loads(answer)

    return every_page(fetch)


def wait_subscribed(pub: zmq.Socket, count: int) -> None:
    """Until COUNT subscriptions reached the XPUB publisher (one per daemon connection)."""
    seen = 0
    deadline = time.monotonic() + TIMEOUT
    while seen < count:
        assert time.monotonic() < deadline, f"{seen} of {count} daemons subscribed"
        if pub.poll(100) and pub.recv()[:1] == b"\x01":
            seen += 1
    time.sleep(0.2)


@pytest.fixture
def bus() -> Iterator[tuple[zmq.Socket, str]]:
    ctx = zmq.Context()
    pub, endpoint = bus_publisher(ctx)
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)
    yield pub, endpoint
    pub.close(0)
    ctx.term()


def test_a_restarted_daemon_back_fills_what_it_missed_from_its_peer(
    tmp_path: Path, bus: tuple[zmq.Socket, str]
) -> None:
    pub, endpoint = bus
    since = int(time.time()) - 1
    a = start(tmp_path, "a", endpoint, [])
    b = start(tmp_path, "b", endpoint, [a.http])
    try:
        wait_subscribed(pub, 2)
        publish(pub, 1, 30)
        b.stop()
        publish(pub, 31, 120)  # ~1.2 s that only A sees
        b = start(tmp_path, "b", endpoint, [a.http])
        wait_subscribed(pub, 1)
        publish(pub, 151, 30)
        b.wait_metrics(lambda m: m["backfill_running"] == 0)
        reference = raw_all(a, since)
        assert [body["i"] for body in reference] == list(range(1, 181))
        filled = raw_all(b, since)
        assert sorted(filled, key=lambda body: body["i"]) == reference
        samples = b.scrape()
        assert samples["window_unfilled_seconds"] == 0
        assert samples["backfilled_messages_total"] >= 120
        # What B holds now: its two runs and, between them, what it took from A (GET /window).
        status, kind, answer = http_get(f"{b.http}/window")
        assert (status, kind) == (200, "application/json")
        # One stretch: no gap left.
        assert len(json.loads(answer)["held"]) == 1, answer
    finally:
        a.stop()
        b.stop()


def test_what_no_peer_can_fill_is_logged_and_exported(tmp_path: Path, bus: tuple[zmq.Socket, str]) -> None:
    pub, endpoint = bus
    silent_peer = f"http://127.0.0.1:{free_port()}"
    daemon = start(tmp_path, "c", endpoint, [silent_peer])
    wait_subscribed(pub, 1)
    publish(pub, 1, 10)
    # Written before the stop (a message still in the socket when it stops would be in the gap).
    daemon.wait_metrics(lambda m: m["window_messages"] >= 10)
    daemon.stop()
    time.sleep(2)  # a gap of 2 s
    for peers in ([silent_peer], []):
        daemon = start(tmp_path, "c", endpoint, peers)
        try:
            samples = daemon.wait_metrics(lambda m: m["backfill_running"] == 0)
            assert samples["window_unfilled_seconds"] >= 1.5
            assert "could not be filled" in daemon.stderr or not peers
            # It answers with what it has.
            assert [body["i"] for body in raw_all(daemon, int(time.time()) - 60)] == list(range(1, 11))
        finally:
            daemon.stop()


@pytest.mark.parametrize(
    "peers",
    [
        '["busgateway02:9919"]',
        '["ftp://busgateway02:9919"]',
        '"http://busgateway02:9919"',
        '["http://x:99999"]',
    ],
)
def test_peers_must_be_base_urls(tmp_path: Path, peers: str) -> None:
    config = tmp_path / "websocket.toml"
    config.write_text(f'endpoints = ["tcp://127.0.0.1:5001"]\npeers = {peers}\n')
    result = run_to_exit("fedmsg_websocket", "--check-config", "--config", str(config))
    assert result.returncode == 2, result
    assert result.stderr.startswith(f"fedmsg-websocket: {config}: peers: "), result.stderr
