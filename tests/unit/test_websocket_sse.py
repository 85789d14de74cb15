"""GET /stream (Server-Sent Events) against a real daemon: live, filtered, resumed with Last-Event-ID with
messages published while the backlog is being read, slow streams, refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq
from gateway_harness import TIMEOUT, bus_publisher, wait_subscribed
from websocket_harness import SseClient, WebsocketDaemon, bus_message, publish

StartWebsocket = Callable[..., WebsocketDaemon]
GIT = "org.fedoraproject.prod.git.receive"
BODHI = "org.fedoraproject.prod.bodhi.update"


def data_for(topic: str, body: bytes) -> str:
    return '{"topic": ' + json.dumps(topic) + ', "body": ' + body.decode() + "}"


def padded(index: int, topic: str = GIT, size: int = 3000) -> tuple[str, bytes]:
    """A ~3 KB fedmsg-like body (Fedora's median)."""
    body = json.dumps(
        {"i": index, "msg_id": f"m-{index}", "timestamp": 1_700_000_000 + index, "pad": "x" * size}
    )
    return topic, body.encode()


@pytest.fixture
def bus(start_windowed: Callable[..., tuple], tmp_path: Path) -> Callable[..., tuple]:
    """start(*config_lines) -> (publisher, daemon with a window)."""

    def start(*lines: str) -> tuple[zmq.Socket, WebsocketDaemon]:
        config = tmp_path / "websocket.toml"
        config.write_text("".join(f"{line}\n" for line in lines))
        return start_windowed("--config", str(config))

    return start


def stored(daemon: WebsocketDaemon, count: int) -> None:
    daemon.wait_metrics(lambda s: s["window_messages"] == count)


def test_live_stream_is_subscribed_when_the_headers_arrive(bus: Callable[..., tuple]) -> None:
    pub, daemon = bus()
    client = SseClient(daemon, "/stream")
    assert client.status == 200
    assert client.headers["content-type"] == "text/event-stream; charset=utf-8"
    # No warm-up: once the headers are here, the very next bus message is for this stream.
    messages = [bus_message(i) for i in range(100)]
    publish(pub, messages)
    events = client.events(len(messages))
    assert [data for _, data in events] == [data_for(*m) for m in messages]
    cursors = [cursor for cursor, _ in events]
    assert cursors == sorted(set(cursors))
    assert client.nothing_more()
    assert daemon.scrape()["sse_clients"] == 1
    client.close()
    assert daemon.wait_metrics(lambda s: s["sse_clients"] == 0)


def test_topics_are_prefixes_and_repeatable(bus: Callable[..., tuple]) -> None:
    pub, daemon = bus()
    client = SseClient(daemon, "/stream?topic=org.fedoraproject.prod.bodhi*&topic=org.other")
    messages = [bus_message(i, [GIT, BODHI, "org.other.x"][i % 3]) for i in range(90)]
    publish(pub, messages)
    wanted = [m for m in messages if m[0] != GIT]
    assert [data for _, data in client.events(len(wanted))] == [data_for(*m) for m in wanted]
    assert client.nothing_more()


def test_a_body_with_line_breaks_arrives_whole(bus: Callable[..., tuple]) -> None:
    pub, daemon = bus()
    client = SseClient(daemon, "/stream")
    body = b'{\n  "a": 1,\r\n  "b": "two"\r}'
    publish(pub, [(GIT, body)])
    ((_, data),) = client.events(1)
    assert json.loads(data) == {"topic": GIT, "body": {"a": 1, "b": "two"}}


def test_resume_has_no_gap_and_no_duplicate_with_messages_published_during_the_backlog(
    bus: Callable[..., tuple],
) -> None:
    pub, daemon = bus()
    first = SseClient(daemon, "/stream")
    before = [padded(i) for i in range(3000)]
    publish(pub, before)
    seen = first.events(len(before))
    first.close()
    stored(daemon, len(before))
    cursor = seen[99][0]  # it saw 100, then went away
    # It comes back reading nothing at first: its backlog (~9 MB) outgrows the socket buffers, so the
    # daemon is still sending it when the next messages are published.
    again = SseClient(daemon, "/stream", {"Last-Event-ID": str(cursor)}, receive_buffer=4096)
    assert again.status == 200
    daemon.wait_metrics(lambda s: s["resuming"] == 1)
    during = [padded(i) for i in range(3000, 3500)]
    publish(pub, during)
    daemon.wait_metrics(lambda s: s["messages_received_total"] >= len(before) + len(during))
    assert daemon.scrape()["resuming"] == 1, "the resume ended before the test could publish during it"
    after = [padded(i) for i in range(3500, 3600)]
    events = again.events(len(before) - 100 + len(during))
    publish(pub, after)
    events += again.events(len(after))
    assert [data for _, data in events] == [data_for(*m) for m in before[100:] + during + after]
    cursors = [c for c, _ in events]
    assert cursors == sorted(set(cursors))
    assert cursors[: len(before) - 100] == [c for c, _ in seen[100:]]
    assert again.nothing_more()
    samples = daemon.scrape()
    assert samples["resumes_total"] == 1
    assert samples["resume_messages_total"] == len(before) - 100
    assert samples["resuming"] == 0
    assert samples["sse_clients"] == 1


def test_resume_replays_at_most_resume_max_messages(bus: Callable[..., tuple]) -> None:
    pub, daemon = bus("resume_max_messages = 5")
    messages = [bus_message(i) for i in range(20)]
    publish(pub, messages)
    stored(daemon, len(messages))
    client = SseClient(daemon, "/stream", {"Last-Event-ID": "0"})
    assert [data for _, data in client.events(5)] == [data_for(*m) for m in messages[-5:]]
    assert client.nothing_more()
    assert daemon.wait_metrics(lambda s: s["resume_truncated_total"] == 1)


def test_resume_after_a_restart_from_the_window(
    bus: Callable[..., tuple], ctx: zmq.Context, start_websocket: StartWebsocket
) -> None:
    pub, daemon = bus()
    client = SseClient(daemon, "/stream")
    messages = [bus_message(i) for i in range(10)]
    publish(pub, messages)
    seen = client.events(10)
    stored(daemon, 10)
    client.close()
    args = daemon.process.args
    assert daemon.stop() == 0
    pub2, url = bus_publisher(ctx)
    again = start_websocket([url], *args[args.index("--state-dir") : args.index("--state-dir") + 2])
    wait_subscribed(pub2)
    resumed = SseClient(again, "/stream", {"Last-Event-ID": str(seen[3][0])})
    later = [bus_message(i) for i in range(10, 15)]
    backlog = resumed.events(6)
    publish(pub2, later)
    events = backlog + resumed.events(5)
    assert [data for _, data in events] == [data_for(*m) for m in messages[4:] + later]
    assert events[-1][0] > seen[-1][0]
    # It found the window written up to where the restarted daemon began: no wait, nothing missing.
    assert again.scrape()["resume_failed_total"] == 0


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        ("/stream?category=git", {}, b"category: unknown parameter (known: topic)\n"),
        ("/stream?" + "&".join(["topic=a"] * 300), {}, b"topic: at most 256\n"),
        ("/stream", {"Last-Event-ID": "yesterday"}, b"Last-Event-ID: not a cursor from this stream\n"),
    ],
)
def test_bad_requests_are_400(bus: Callable[..., tuple], path: str, headers: dict, reason: bytes) -> None:
    _, daemon = bus()
    client = SseClient(daemon, path, headers)
    assert client.status == 400
    assert client.body() == reason
    assert daemon.wait_metrics(lambda s: s["sse_refused_total"] == 1)


def test_quiet_stream_gets_keepalive_comments(bus: Callable[..., tuple]) -> None:
    _, daemon = bus("ping_interval = 1")
    client = SseClient(daemon, "/stream")
    start = time.monotonic()
    cursor, data, comments = client.event()
    assert (cursor, data, comments) == (None, "", [": keepalive"])
    assert time.monotonic() - start < TIMEOUT


def test_slow_stream_is_closed_and_a_fast_one_gets_everything(bus: Callable[..., tuple]) -> None:
    pub, daemon = bus("max_queue_bytes = 1048576")
    slow = SseClient(daemon, "/stream", receive_buffer=4096)
    fast = SseClient(daemon, "/stream")
    sent: list[tuple[str, bytes]] = []
    received: list[tuple[int, str]] = []
    for _ in range(100):
        batch = [padded(len(sent) + i, size=16384) for i in range(32)]
        publish(pub, batch)
        sent += batch
        received += fast.events(len(batch))
        if daemon.scrape()["slow_client_closes_total"] >= 1:
            break
    else:
        raise AssertionError("the slow stream was never closed")
    assert [data for _, data in received] == [data_for(*m) for m in sent]
    assert slow.closed()
    assert daemon.wait_metrics(lambda s: s["sse_clients"] == 1)
    assert "too slow: over 1048576 bytes queued" in daemon.stderr
