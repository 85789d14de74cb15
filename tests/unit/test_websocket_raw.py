"""GET /raw against a real daemon with a window: datagrepper's parameters, bodies as published, refusals,
a window that outlives a restart, and the real fedmsg consumer's backlog code (under .venv)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable

import pytest
import zmq
from gateway_harness import bus_publisher, wait_subscribed
from websocket_harness import WebsocketDaemon, fedmsg_backlog, http_get, publish

StartWebsocket = Callable[..., WebsocketDaemon]
GIT = "org.fedoraproject.prod.git.receive"
BODHI = "org.fedoraproject.prod.bodhi.update.comment"
BASE = 1_700_000_000
KNOWN = "end, order, page, rows_per_page, start, topic"


def fedmsg_body(index: int, topic: str, timestamp: float) -> bytes:
    """A fedmsg-shaped body in a spelling json.dumps would not produce (no spaces, a float written with an
    exponent, a non-ASCII character): any re-serialisation would show."""
    return (
        f'{{"username":"apache","i":{index},"timestamp":{timestamp},"msg_id":"2026-{index:06d}",'
        f'"topic":"{topic}","msg":{{"agent":"zoë","size":1.0e3}},"signature":"c2ln{index}=="}}'
    ).encode()


def raw(daemon: WebsocketDaemon, **params: object) -> tuple[int, bytes]:
    pairs = [
        (name, value)
        for name, values in params.items()
        for value in (values if isinstance(values, list) else [values])
    ]
    status, _, body = http_get(f"{daemon.http}/raw?{urllib.parse.urlencode(pairs)}")
    return status, body


def expected_page(bodies: list[bytes], total: int, pages: int) -> bytes:
    return (
        b'{"raw_messages": ['
        + b", ".join(bodies)
        + f'], "count": {len(bodies)}, "pages": {pages}, "total": {total}}}'.encode()
    )


@pytest.fixture
def window(
    start_windowed: Callable[..., tuple[zmq.Socket, WebsocketDaemon]],
) -> tuple[zmq.Socket, WebsocketDaemon, list[tuple[str, bytes]]]:
    """A daemon with a window holding 30 messages: timestamps BASE+0..9 three times (git, bodhi, git)."""
    pub, daemon = start_windowed()
    messages = []
    for index in range(30):
        topic = BODHI if index % 3 == 1 else GIT
        messages.append((topic, fedmsg_body(index, topic, BASE + index // 3)))
    publish(pub, messages)
    daemon.wait_metrics(lambda s: s["window_messages"] == len(messages))
    return pub, daemon, messages


def test_raw_pages_bodies_as_published(window: tuple[zmq.Socket, WebsocketDaemon, list]) -> None:
    _, daemon, messages = window
    bodies = [body for _, body in messages]
    # start and end are inclusive, on the bodies' own timestamps; asc is bus order within a second.
    status, answer = raw(daemon, start=BASE + 2, end=BASE + 5, order="asc", rows_per_page=5, page=2)
    assert status == 200
    assert answer == expected_page(bodies[11:16], total=12, pages=3)
    status, answer = raw(daemon, start=BASE + 2, end=BASE + 5, order="asc", rows_per_page=5, page=3)
    assert answer == expected_page(bodies[16:18], total=12, pages=3)
    # desc (datagrepper's default order): newest first.
    status, answer = raw(daemon, start=BASE + 9, order="desc")
    assert answer == expected_page(bodies[29:26:-1], total=3, pages=1)
    # Past the last page: nothing, with the same totals.
    assert raw(daemon, start=BASE, end=BASE + 9, rows_per_page=100, page=2)[1] == expected_page([], 30, 1)
    parsed = json.loads(raw(daemon, start=BASE, end=BASE, order="asc")[1])
    assert parsed["raw_messages"][0] == json.loads(bodies[0])
    assert isinstance(parsed["raw_messages"][0]["timestamp"], int)


def test_raw_topics_are_exact_and_repeatable(window: tuple[zmq.Socket, WebsocketDaemon, list]) -> None:
    _, daemon, messages = window
    bodhi = [body for topic, body in messages if topic == BODHI]
    status, answer = raw(daemon, topic=BODHI, order="asc", rows_per_page=100)
    assert (status, answer) == (200, expected_page(bodhi, total=10, pages=1))
    # A prefix is not a topic: /raw's topic is exact, as datagrepper's.
    assert raw(daemon, topic="org.fedoraproject.prod")[1] == expected_page([], 0, 0)
    status, answer = raw(daemon, topic=[BODHI, GIT], rows_per_page=100, order="asc")
    assert answer == expected_page([body for _, body in messages], total=30, pages=1)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("rows_per_page=0", "rows_per_page: expected an integer 1..100, got '0'"),
        ("rows_per_page=101", "rows_per_page: expected an integer 1..100, got '101'"),
        ("page=0", "page: expected an integer 1..1000000, got '0'"),
        ("page=-1", "page: expected an integer 1..1000000, got '-1'"),
        ("page=1e3", "page: expected an integer 1..1000000, got '1e3'"),
        ("start=yesterday", "start: expected epoch seconds, got 'yesterday'"),
        ("end=nan", "end: expected a finite number, got 'nan'"),
        ("start=5&end=4", "start: after end"),
        ("order=random", "order: expected asc or desc, got 'random'"),
        ("page=1&page=2", "page: given more than once"),
        ("category=git", "category: unknown parameter (known: " + KNOWN + ")"),
        ("&".join(["topic=a"] * 101), "topic: at most 100"),
        ("&".join(["x=1"] * 200), "too many parameters"),
    ],
)
def test_raw_bad_parameters_are_400_with_one_line(
    window: tuple[zmq.Socket, WebsocketDaemon, list], query: str, reason: str
) -> None:
    _, daemon, _ = window
    status, kind, body = http_get(f"{daemon.http}/raw?{query}")
    assert (status, kind, body) == (400, "text/plain; charset=utf-8", f"{reason}\n".encode())
    assert daemon.wait_metrics(lambda s: s["raw_bad_requests_total"] == 1)
    assert "Traceback" not in daemon.stderr


def test_raw_without_a_window_is_503(start_websocket: StartWebsocket) -> None:
    daemon = start_websocket(["tcp://127.0.0.1:1"])
    assert http_get(f"{daemon.http}/raw") == (
        503,
        "text/plain; charset=utf-8",
        b"no window: state_dir is not set\n",
    )


def test_window_outlives_a_restart(
    ctx: zmq.Context, window: tuple[zmq.Socket, WebsocketDaemon, list], start_websocket: StartWebsocket
) -> None:
    _, daemon, messages = window
    state = daemon.process.args[daemon.process.args.index("--state-dir") + 1]
    everything = {"start": BASE, "end": BASE + 100, "order": "asc", "rows_per_page": 100}
    before = raw(daemon, **everything)
    assert daemon.stop() == 0
    pub2, url = bus_publisher(ctx)
    again = start_websocket([url], "--state-dir", state)
    wait_subscribed(pub2)
    assert again.scrape()["window_messages"] == len(messages)
    assert raw(again, **everything) == before
    later = (GIT, fedmsg_body(99, GIT, BASE + 50))
    publish(pub2, [later])
    again.wait_metrics(lambda s: s["window_messages"] == len(messages) + 1)
    _, answer = raw(again, **everything)
    assert answer == expected_page([body for _, body in messages] + [later[1]], total=31, pages=1)


def test_fedmsg_consumer_backlog_reads_every_page(window: tuple[zmq.Socket, WebsocketDaemon, list]) -> None:
    """fedmsg's own FedmsgConsumer._backlog and get_datagrepper_results, unmodified, against /raw."""
    pub, daemon, messages = window
    # 250 more in one second (three pages of 100), after the message the consumer saw last.
    more = [(GIT, fedmsg_body(100 + index, GIT, BASE + 20)) for index in range(250)]
    publish(pub, more)
    daemon.wait_metrics(lambda s: s["window_messages"] == len(messages) + len(more))
    last_seen = json.loads(messages[25][1])  # timestamp BASE+8: the rest of that second comes again

    got = fedmsg_backlog(f"{daemon.http}/raw", "org.fedoraproject.prod.git.*", last_seen)
    later = [(t, b) for t, b in messages + more if json.loads(b)["timestamp"] >= last_seen["timestamp"]]
    wanted = [json.loads(b) for t, b in later if t == GIT and json.loads(b)["msg_id"] != last_seen["msg_id"]]
    assert [item["body"] for item in got] == wanted
    assert len(wanted) > 200  # several pages of 100
    assert all(isinstance(item["body"]["timestamp"], int) for item in got)
    # What it parsed is what was published, byte for byte: every body appears verbatim in the pages.
    pages = b"".join(
        raw(daemon, start=last_seen["timestamp"], end=BASE + 100, order="asc", rows_per_page=100, page=p)[1]
        for p in (1, 2, 3)
    )
    assert all(body in pages for _, body in later)
