"""The catch-up window's figures, each against a baseline measured in the same run.

    .venv/bin/python bench/window.py [--repeat 5] [--messages 20000] [--json FILE]

1. Writes against the relay. (a) The store alone: Store.append() of 3 KB messages in batches of 256, one
   transaction each, as the writer thread does, on a fresh file: msg/s. (b) The daemon's relay with and
   without a window, alternated: a burst of 3 KB messages published at once into fedmsg-websocket, relayed to
   one SSE client; msg/s from the first publish to the last event; for the window run also when the window
   held the whole burst, and its write-queue drops. The ratio (b with / b without) says whether writing slows
   the live stream; (a) / Fedora's 0.7 msg/s says how far above the bus the store is.
2. Bytes on disk per message: the database file (after a WAL checkpoint) / messages, against the payload.
3. Serving a backlog of 10 minutes at 10 msg/s (6000 x 3 KB, written with Store into a state dir, then a
   daemon started on it): SSE with Last-Event-ID from before the first one, until its last event arrives;
   /raw as fedmsg's consumer reads it: 60 pages of 100 one after the other. Baseline: the 600 s the
   backlog took to happen (and each against the other).
Medians of --repeat runs; every run's figures go to --json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import zmq
from benchlib import free_port, start_daemon

from fedmsg_websocket.frames import Cursors
from fedmsg_websocket.window import Store, path_in

BODY_BYTES = 3000
BATCH = 256
FEDORA_RATE = 0.7
BACKLOG_RATE = 10
BACKLOG_SECONDS = 600
TOPIC = "org.fedoraproject.prod.git.receive"


class Message:
    """What Store.append() needs, with fixed-size bodies (so SSE events have a fixed size too)."""

    __slots__ = ("body", "cursor", "msg_id", "received", "timestamp", "topic")

    def __init__(self, index: int, cursor: int, received: float) -> None:
        self.msg_id = f"2026-{index:010d}"
        self.timestamp = float(int(received))
        self.topic = TOPIC
        self.body = body(index, int(received))
        self.cursor = cursor
        self.received = received


def body(index: int, timestamp: int) -> bytes:
    head = f'{{"msg_id": "2026-{index:010d}", "timestamp": {timestamp}, "i": "{index:010d}", "pad": "'
    return (head + "x" * (BODY_BYTES - len(head) - 2) + '"}').encode()


def store_rate(workdir: Path, count: int) -> dict[str, float]:
    path = str(workdir / "store.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    now = time.time()
    store = Store(path, max_age=7 * 86400, max_bytes=1 << 40, now=now)
    cursors = Cursors()
    messages = [Message(i, cursors.next(now), now) for i in range(count)]
    start = time.perf_counter()
    for first in range(0, count, BATCH):
        store.append(messages[first : first + BATCH], now)
    took = time.perf_counter() - start
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    payload = store.bytes
    store.close()
    size = sum(os.path.getsize(path + suffix) for suffix in ("", "-wal") if os.path.exists(path + suffix))
    return {
        "store_msg_per_s": count / took,
        "disk_bytes_per_message": size / count,
        "payload_bytes_per_message": payload / count,
    }


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        lines = page.read().decode().splitlines()
    return {
        name.removeprefix("fedmsg_websocket_"): float(value)
        for name, _, value in (line.rpartition(" ") for line in lines if not line.startswith("#"))
        if "{" not in name
    }


class SseSink:
    """Reads a /stream as fast as it can and counts bytes; the events all have the same size."""

    def __init__(self, port: int, headers: str = "") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sent_at = time.perf_counter()
        request = f"GET /stream?topic={TOPIC} HTTP/1.1\r\nHost: x\r\n{headers}\r\n"
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(65536)
        self.received = len(head.partition(b"\r\n\r\n")[2])
        self.last = time.perf_counter()

    def read_until(self, total: int, timeout: float = 120) -> None:
        self.sock.settimeout(timeout)
        while self.received < total:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"stream closed after {self.received} of {total} bytes")
            self.received += len(chunk)
        self.last = time.perf_counter()

    def close(self) -> None:
        self.sock.close()


def event_size(cursor: int, index: int) -> int:
    data = '{"topic": ' + json.dumps(TOPIC) + ', "body": ' + body(index, int(time.time())).decode() + "}"
    return len(f"id: {cursor}\ndata: {data}\n\n".encode())


def relay_rate(workdir: Path, count: int, window: bool) -> dict[str, float]:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    bus = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
    port, metrics_port = free_port(), free_port()
    args = ["--endpoint", bus, "--bind", f"127.0.0.1:{port}", "--metrics", f"127.0.0.1:{metrics_port}"]
    state = workdir / f"state-{time.monotonic_ns()}"
    if window:
        state.mkdir()
        args += ["--state-dir", str(state)]
    daemon = start_daemon("fedmsg_websocket", args)
    try:
        sink = SseSink(port)
        # Until the daemon hears the bus (slow joiner): warm-ups on a topic the sink does not get.
        while not metrics(metrics_port)["messages_received_total"]:
            pub.send_multipart([b"warmup", b"{}"])
            time.sleep(0.05)
        time.sleep(0.2)
        warm = metrics(metrics_port)
        messages = [body(i, int(time.time())) for i in range(count)]
        start = time.perf_counter()
        for payload in messages:
            pub.send_multipart([TOPIC.encode(), payload])
        sink.read_until(sink.received + count * event_size(10**15, 0))
        took = sink.last - start
        result = {"relay_msg_per_s": count / took}
        if window:
            deadline = time.monotonic() + 120
            while metrics(metrics_port)["window_messages"] < warm["window_messages"] + count:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            stored = time.perf_counter() - start
            final = metrics(metrics_port)
            result |= {
                "window_complete_s": stored,
                "window_msg_per_s": count / stored,
                "window_missing": warm["window_messages"] + count - final["window_messages"],
                "queue_drops": final["window_write_queue_drops_total"],
                "write_errors": final["window_write_errors_total"],
            }
        sink.close()
        return result
    finally:
        daemon.terminate()
        daemon.wait(10)
        pub.close(0)
        ctx.term()


def backlog(workdir: Path) -> dict[str, float]:
    state = workdir / f"backlog-{time.monotonic_ns()}"
    state.mkdir()
    now = time.time()
    count = BACKLOG_RATE * BACKLOG_SECONDS
    first = now - BACKLOG_SECONDS
    store = Store(path_in(str(state)), max_age=7 * 86400, max_bytes=1 << 40, now=first)
    cursors = Cursors()
    messages = [
        Message(i, cursors.next(first + i / BACKLOG_RATE), first + i / BACKLOG_RATE) for i in range(count)
    ]
    for start in range(0, count, BATCH):
        store.append(messages[start : start + BATCH], messages[min(start + BATCH, count) - 1].received)
    store.close()
    port = free_port()
    args = ["--endpoint", "tcp://127.0.0.1:1", "--bind", f"127.0.0.1:{port}", "--metrics", ""]
    args += ["--state-dir", str(state), "--config", str(workdir / "backlog.toml")]
    (workdir / "backlog.toml").write_text(f"resume_max_messages = {count}\n")
    daemon = start_daemon("fedmsg_websocket", args)
    try:
        # SSE: everything after the cursor before the first message.
        size = sum(event_size(m.cursor, m_index) for m_index, m in enumerate(messages))
        sink = SseSink(port, f"Last-Event-ID: {messages[0].cursor - 1}\r\n")
        sink.read_until(sink.received + size)
        sse = sink.last - sink.sent_at
        sink.close()
        # /raw: the pages one after the other, as fedmsg's consumer asks for them.
        start = time.perf_counter()
        got = 0
        pages = 1
        page = 1
        while page <= pages:
            query = f"start={int(first) - 1}&end={int(now) + 1}&order=asc&rows_per_page=100&page={page}"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/raw?{query}", timeout=30) as answer:
                data = json.loads(answer.read())
            pages = data["pages"]
            got += data["count"]
            page += 1
        raw = time.perf_counter() - start
        if got != count:
            raise RuntimeError(f"/raw gave {got} of {count}")
    finally:
        daemon.terminate()
        daemon.wait(10)
    return {"backlog_sse_s": sse, "backlog_raw_s": raw, "backlog_raw_pages": pages}


def report(m: dict[str, float], runs: list[dict[str, float]], messages: int, repeat: int) -> None:
    relay, relay_window = m["no_window_relay_msg_per_s"], m["with_window_relay_msg_per_s"]
    drops = max(run["with_window_queue_drops"] for run in runs)
    missing = max(run["with_window_window_missing"] for run in runs)
    disk, payload = m["disk_bytes_per_message"], m["payload_bytes_per_message"]
    sse, raw = m["backlog_sse_s"], m["backlog_raw_s"]
    lines = [
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {repeat} runs, medians:",
        f"store write rate        {m['store_msg_per_s']:10,.0f} msg/s of 3 KB"
        f"  = {m['store_msg_per_s'] / FEDORA_RATE:,.0f} x Fedora's {FEDORA_RATE} msg/s",
        f"relay, no window        {relay:10,.0f} msg/s (bursts of {messages}); store / relay"
        f" = {m['store_msg_per_s'] / relay:.2f}",
        f"relay, with window      {relay_window:10,.0f} msg/s; with / without = {relay_window / relay:.2f}",
        f"window complete after   {m['with_window_window_complete_s']:10.2f} s"
        f"  ({m['with_window_window_msg_per_s']:,.0f} msg/s written in the daemon)",
        f"window queue drops      {drops:10.0f}   messages missing from it {missing:.0f} (worst run)",
        f"disk per message        {disk:10,.0f} B  (payload {payload:,.0f} B, x{disk / payload:.2f})",
        f"10-min backlog via SSE  {sse:10.2f} s  ({BACKLOG_SECONDS / sse:,.0f} x faster than it happened)",
        f"10-min backlog via /raw {raw:10.2f} s  ({m['backlog_raw_pages']:.0f} pages of 100;"
        f" /raw / SSE = {raw / sse:.2f})",
    ]
    print("\n" + "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20000, help="messages per burst and store run")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="fedmsg-window-bench-") as tmp:
        workdir = Path(tmp)
        for repetition in range(args.repeat):
            run: dict[str, float] = {}
            run |= store_rate(workdir, args.messages)
            # Alternate which relay goes first, so background load hits both alike.
            order = (False, True) if repetition % 2 == 0 else (True, False)
            for window in order:
                figures = relay_rate(workdir, args.messages, window)
                prefix = "with_window_" if window else "no_window_"
                run |= {prefix + key: value for key, value in figures.items()}
            run |= backlog(workdir)
            runs.append(run)
            print(f"run {repetition + 1}: " + ", ".join(f"{k}={v:.6g}" for k, v in run.items()), flush=True)
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    report(median, runs, args.messages, args.repeat)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median": median}, indent=1) + "\n")


if __name__ == "__main__":
    threading.excepthook = lambda info: sys.exit(f"thread failed: {info.exc_value}")
    main()
