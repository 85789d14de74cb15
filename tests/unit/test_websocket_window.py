"""The window's store on a real SQLite file (bounds, coverage, gaps, back-fill), and its faults in a real
daemon: a corrupt file is moved aside, a stuck disk never slows the live stream."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import zmq
from gateway_harness import TIMEOUT
from websocket_harness import (
    WebsocketDaemon,
    bus_message,
    connect,
    frame_for,
    http_get,
    join,
    publish,
    receive,
    subscribe,
)

from fedmsg_websocket import window, writer
from fedmsg_websocket.frames import Cursors, Outgoing, build, parse_body
from fedmsg_websocket.window import RawQuery, Store, gaps, raw_page, reader
from fedmsg_websocket.writer import Writer

StartWindowed = Callable[..., tuple[zmq.Socket, WebsocketDaemon]]
T0 = 1_700_000_000.0


class Message(NamedTuple):
    cursor: int
    received: float
    timestamp: float | None
    msg_id: str | None
    topic: str
    body: bytes


def message(at: float, index: int, size: int = 100) -> Message:
    """A message received at `at` (seconds), all of the same size."""
    msg_id = f"m-{index:06d}"
    body = json.dumps({"msg_id": msg_id, "timestamp": int(at), "pad": "x" * size}).encode()
    return Message(int(at * 1_000_000) + index, at, float(int(at)), msg_id, "t", body)


def test_store_keeps_within_max_bytes_and_max_age(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "w.sqlite3"), max_age=3600, max_bytes=50_000, now=T0)
    size = len(message(T0, 0).body) + 1
    for batch in range(10):
        store.append([message(T0 + batch, batch * 100 + i) for i in range(100)], T0 + batch)
        assert store.bytes <= 50_000
    assert store.rows == 50_000 // size
    assert store.newest == message(T0 + 9, 999).cursor
    # An hour later everything is too old: pruned a bounded step at a time, the newest batch kept.
    store.append([message(T0 + 4000, 5000)], T0 + 4000)
    assert store.rows == 1
    assert store.oldest == store.newest == message(T0 + 4000, 5000).cursor
    conn = reader(store.path)
    assert conn.execute("SELECT count(*), sum(length(topic) + length(body)) FROM messages").fetchone() == (
        1,
        store.bytes,
    )
    store.close()
    again = Store(store.path, max_age=3600, max_bytes=50_000, now=T0 + 4001)
    assert (again.rows, again.bytes, again.newest) == (1, store.bytes, store.newest)


def test_coverage_gaps_and_backfill_from_a_peer(tmp_path: Path) -> None:
    path = str(tmp_path / "w.sqlite3")
    first = Store(path, max_age=86400, max_bytes=10**9, now=T0)
    first.append([message(T0 + 1, 1)], T0 + 10)
    first.touch(T0 + 10)
    first.close()
    # Down from T0+10 to T0+100; then a write lost at T0+150..T0+200.
    second = Store(path, max_age=86400, max_bytes=10**9, now=T0 + 100)
    second.append([message(T0 + 101, 2)], T0 + 150)
    second.touch(T0 + 150)
    second.lost()
    second.append([message(T0 + 200, 3)], T0 + 300)
    second.touch(T0 + 300)
    conn = reader(path)
    assert gaps(conn, T0, T0 + 300) == [(T0 + 10, T0 + 100), (T0 + 150, T0 + 200)]
    assert gaps(conn, T0 + 20, T0 + 30) == [(T0 + 20, T0 + 30)]
    assert gaps(conn, T0 + 100, T0 + 150) == []

    peer = [message(T0 + 20 + i, 10 + i) for i in range(5)]
    fetched = [("t", m.body) for m in peer] + [("t", message(T0 + 1, 1).body)]  # one it already has
    assert second.backfill(fetched, T0 + 10, T0 + 100, "peer gw02") == 5
    assert second.backfill(fetched, T0 + 10, T0 + 100, "peer gw02") == 0  # deduplicated by msg_id
    assert gaps(conn, T0, T0 + 300) == [(T0 + 150, T0 + 200)]
    total, bodies = raw_page(conn, RawQuery(start=T0, end=T0 + 300, descending=False, rows_per_page=100))
    assert total == 8
    assert bodies == [
        message(T0 + 1, 1).body,
        *(m.body for m in peer),
        message(T0 + 101, 2).body,
        message(T0 + 200, 3).body,
    ]
    cursors = [row[0] for row in conn.execute("SELECT id FROM messages ORDER BY id")]
    assert all(int((T0 + 10) * 1e6) <= c <= int((T0 + 100) * 1e6) for c in cursors[1:6])


def test_corrupt_window_is_moved_aside_for_a_new_one(start_windowed: StartWindowed, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "window.sqlite3").write_bytes(b"this is not a database" * 1000)
    pub, daemon = start_windowed()
    publish(pub, [bus_message(1)])
    samples = daemon.wait_metrics(lambda s: s["window_messages"] == 1)
    assert (samples["window_up"], samples["window_write_errors_total"]) == (1, 1)
    assert (state / "window.sqlite3.corrupt").read_bytes().startswith(b"this is not a database")
    errors = [line for line in daemon.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1
    assert "is corrupt" in errors[0]


def test_a_stuck_window_never_slows_the_live_stream(start_windowed: StartWindowed, tmp_path: Path) -> None:
    pub, daemon = start_windowed()
    state = tmp_path / "state"
    # Another process holds the write lock: each of the daemon's writes waits 5 s (busy timeout), fails.
    blocker = sqlite3.connect(state / "window.sqlite3", isolation_level=None)
    messages = [bus_message(i) for i in range(200)]

    async def scenario() -> tuple[list[str], float]:
        async with connect(daemon) as client:
            await subscribe(client, "*")
            await join(pub, client)
            blocker.execute("BEGIN IMMEDIATE")
            start = time.monotonic()
            publish(pub, messages)
            frames = await receive(client, len(messages))
            return frames, time.monotonic() - start

    frames, took = asyncio.run(scenario())
    assert frames == [frame_for(*m) for m in messages]
    assert took < 2.0, f"the live stream took {took:.1f} s while the window was stuck"
    daemon.wait_metrics(lambda s: s["window_write_errors_total"] >= 1)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert "window: write failed" in daemon.stderr
    publish(pub, [("sentinel", b'{"timestamp": 5}')])
    deadline = time.monotonic() + TIMEOUT
    while (
        http_get(f"{daemon.http}/raw?topic=sentinel")[2]
        != b'{"raw_messages": [{"timestamp": 5}], "count": 1, "pages": 1, "total": 1}'
    ):
        assert time.monotonic() < deadline, "the window never took writes again"
        time.sleep(0.1)
    assert daemon.scrape()["window_up"] == 1
    # What could not be written is a gap in the coverage (a peer may fill it).
    conn = reader(str(state / "window.sqlite3"))
    assert len(gaps(conn, 0, time.time() - 1)) >= 2


def test_writer_drops_past_its_queue_and_settles_past_the_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread in-process, its queue made small: a stuck database makes it drop and count,
    never block the caller; the cursors it gave up on still settle, and the loss is a coverage gap."""
    monkeypatch.setattr(writer, "QUEUE_BYTES", 100_000)
    monkeypatch.setattr(window, "BUSY_TIMEOUT_MS", 300)
    path = str(tmp_path / "w.sqlite3")
    cursors = Cursors()

    def batch(size: int) -> list[Outgoing]:
        now = time.time()
        messages = []
        for _ in range(size):
            body = json.dumps({"msg_id": f"m-{cursors.last}", "timestamp": now, "pad": "x" * 3000}).encode()
            text, parsed = parse_body(body)
            messages.append(build("t", text, parsed, body, cursor=cursors.next(now), received=now))
        return messages

    opened = time.time()

    async def scenario() -> tuple[Writer, float, bool]:
        queue = Writer(path, 3600, 1 << 30, asyncio.get_running_loop())
        queue.start()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        sent = [batch(10) for _ in range(20)]  # ~1.8 MB against a 100 kB queue
        # Only the hand-overs are timed (building the batches is the test's own work): a blocked
        # hand-over would wait for the database's 300 ms busy timeout at least.
        start = time.monotonic()
        for messages in sent:
            queue.submit(messages)
        took = time.monotonic() - start
        blocker.execute("ROLLBACK")
        blocker.close()
        settled = await queue.settled_through(sent[-1][-1].cursor, 10)
        queue.submit(batch(1))
        assert await queue.settled_through(cursors.last, 10)
        assert queue.stop(5)
        return queue, took, settled

    queue, took, settled = asyncio.run(scenario())
    assert took < 0.1
    assert settled
    assert queue.queue_drops >= 100
    conn = reader(path)
    stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert stored == 20 * 10 + 1 - queue.queue_drops - 10 * queue.write_errors
    # Coverage was cut where writes were lost and started again with the next written batch.
    assert [
        gap
        for gap in gaps(conn, opened, time.time())
        if opened < gap[0] < gap[1] <= queue.store.newest / 1e6 + 1e-6
    ]
