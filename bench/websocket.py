"""fedmsg-websocket fan-out against the simplest broadcast server the websockets docs show, same run.

    .venv/bin/python bench/websocket.py [--counts 1,100,1000,19000] [--deflate-at 1000] [--json FILE]

For each client count, each server in turn (the baseline first): start it fed by a local ZeroMQ PUB, connect
the clients (in CLIENT_PROCESSES processes of their own: each process, the server included, has its own
20000-fd ceiling), subscribe them all with the moksha frame, then
  1. latency: LATENCY_SECONDS of messages at a light rate; p50/p99 from publish to one client per process;
  2. fan-out: a burst of messages published as fast as pyzmq can; deliveries/s = clients x messages / time
     from the first publish until the last client has the last message; 0 loss: every client counts every
     message (or the run says how many it missed).
Server CPU (user + system) over the burst, RSS before and after the clients connected (memory per idle
client). The baseline is websockets' documented pattern: a set of connections, `broadcast()` to all, fed
by a zmq.asyncio SUB that re-encodes each message once; compression off like ours unless asked.
The clients are a minimal asyncio WebSocket client (frame parser, inflate for permessage-deflate): much
cheaper than the library's, so the servers, not the clients, are what saturates.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from benchlib import cpu_seconds, free_port, raise_nofile, rss_kib, start_daemon

CLIENT_PROCESSES = 4
LATENCY_SECONDS = 3.0
# Light load for the latency phase and the warm-ups: about this many deliveries per second in total (well
# under what either server sustains at any count), 50 msg/s at most, and at least 3 latency messages.
LIGHT_DELIVERIES_PER_S = 5000
# Deliveries in the burst (messages = this / clients, at least 20, at most 2000).
BURST_DELIVERIES = 400000
BODY_BYTES = 1000
DRAIN_TIMEOUT = 60.0
CONNECT_CONCURRENCY = 100
WARMUP = b"warmup"


# Text for the bodies: words drawn at random compress like prose (a run of one letter would flatter deflate).
WORDS = [
    "update",
    "build",
    "package",
    "release",
    "fedora",
    "rawhide",
    "koji",
    "bodhi",
    "pagure",
    "commit",
    "branch",
    "merge",
    "request",
    "review",
    "comment",
    "test",
    "pass",
    "fail",
    "karma",
    "stable",
    "testing",
    "push",
    "tag",
    "side",
    "ticket",
    "issue",
    "fix",
    "bug",
    "security",
    "python",
    "library",
    "module",
    "version",
    "changelog",
    "spec",
    "file",
    "source",
    "patch",
    "upstream",
    "downstream",
    "maintainer",
    "owner",
    "group",
]


def body(index: int, phase: str) -> bytes:
    """A fedmsg-like JSON body of ~BODY_BYTES: the send time first, so clients find it cheaply."""
    head = f'{{"t": {time.time():.6f}, "i": {index}, "phase": "{phase}", '
    fields = (
        f'"msg_id": "2026-{index:08x}-4c1d-{os.urandom(6).hex()}", "username": "packager{index % 97}", '
        f'"msg": {{"agent": "packager{index % 97}", "repo": "rpms/package-{index % 1009}", '
        f'"branch": "rawhide", '
        f'"rev": "{os.urandom(20).hex()}", "summary": "Update to {index % 13}.{index % 7}.{index % 5}", '
        f'"stats": {{"files": {index % 11}, "additions": {index % 300}, "deletions": {index % 120}}}}}, '
        f'"topic": "org.fedoraproject.prod.git.receive", "i2": {index}, "pad": "'
    )
    text = head + fields
    words: list[str] = []
    while len(text) + sum(len(word) + 1 for word in words) < BODY_BYTES - 2:
        words.append(random.choice(WORDS))  # noqa: S311 - filler text, not a secret
    return (text + " ".join(words) + '"}').encode()


# ---------------------------------------------------------------- the baseline server (its own process)


async def baseline_server(endpoint: str, port: int, deflate: bool) -> None:
    """The broadcast example of the websockets docs, fed by the bus."""
    import zmq.asyncio  # noqa: PLC0415

    try:
        from websockets.asyncio.server import broadcast, serve  # noqa: PLC0415
    except ImportError:  # Debian 12's 10.4: the same example with its (legacy) API
        from websockets import broadcast, serve  # type: ignore[no-redef]  # noqa: PLC0415

    connections: set[object] = set()

    async def handler(websocket: object) -> None:
        connections.add(websocket)
        try:
            await websocket.wait_closed()  # type: ignore[attr-defined]
        finally:
            connections.remove(websocket)

    context = zmq.asyncio.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    async with serve(handler, "127.0.0.1", port, compression="deflate" if deflate else None):
        print("ready", flush=True)
        while True:
            topic, payload = await sub.recv_multipart()
            broadcast(connections, json.dumps({"topic": topic.decode(), "body": json.loads(payload)}))


# ---------------------------------------------------------------- the clients (several processes)


class Client(asyncio.Protocol):
    """One WebSocket connection, subscribed to everything, counting and timing what it receives."""

    def __init__(self, host: str, deflate: bool, timed: bool, tally: Tally) -> None:
        self.host, self.deflate, self.timed, self.tally = host, deflate, timed, tally
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = False
        self.warm = False
        self.count = 0
        self.inflater = zlib.decompressobj(-15)
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        extension = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        request = (
            f"GET / HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{extension if self.deflate else ''}\r\n"
        )
        transport.write(request.encode())  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc}"))

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        # Only the subscription and pongs are sent: always short frames.
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.tally.bytes += len(data)
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            if " 101 " not in head.split("\r\n", 1)[0]:
                self.opened.set_exception(ConnectionError(head.split("\r\n", 1)[0]))
                return
            if self.deflate and "permessage-deflate" not in head:
                self.opened.set_exception(ConnectionError("server did not accept permessage-deflate"))
                return
            self.open = True
            self.send_frame(1, b'{"topic": "__topic_subscribe__", "body": "*"}')
            self.opened.set_result(None)
        self._frames()

    def _frames(self) -> None:
        buffer, position = self.buffer, 0
        while len(buffer) - position >= 2:
            first, length = buffer[position], buffer[position + 1] & 0x7F
            start = position + 2
            if length == 126:
                if len(buffer) - position < 4:
                    break
                length, start = int.from_bytes(buffer[position + 2 : position + 4], "big"), position + 4
            elif length == 127:
                if len(buffer) - position < 10:
                    break
                length, start = int.from_bytes(buffer[position + 2 : position + 10], "big"), position + 10
            if len(buffer) < start + length:
                break
            payload = bytes(buffer[start : start + length])
            position = start + length
            opcode = first & 0x0F
            if opcode == 9:  # ping: the servers would close a client that never answers
                self.send_frame(10, payload)
            elif opcode == 1:
                if first & 0x40:
                    payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
                self._message(payload)
        del buffer[:position]

    def _message(self, frame: bytes) -> None:
        if frame.startswith(b'{"topic": "warmup"'):
            if not self.warm:
                self.warm = True
                self.tally.warm += 1
            return
        self.count += 1
        now = time.time()
        self.tally.last = now
        if self.timed and b'"phase": "latency"' in frame:
            start = frame.index(b'"t": ') + 5
            self.tally.latencies.append(now - float(frame[start : frame.index(b",", start)]))
        if self.count == self.tally.expected:
            self.tally.done += 1


@dataclass
class Tally:
    """What one process's clients received, together: clients warm and done (all `expected` messages
    in), frame bytes, the time of the last message, and the timed client's latencies."""

    expected: int
    bytes: int = 0
    warm: int = 0
    done: int = 0
    last: float = 0.0
    latencies: list[float] = field(default_factory=list)


async def clients_process(port: int, count: int, expected: int, deflate: bool) -> None:
    """Connect `count` clients, then report on stdout: open, joined, and the results as JSON."""
    loop = asyncio.get_running_loop()
    tally = Tally(expected)
    clients: list[Client] = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(index: int) -> None:
        async with gate:
            client = Client(f"127.0.0.1:{port}", deflate, index == 0, tally)
            await loop.create_connection(lambda: client, "127.0.0.1", port)
            await client.opened
            clients.append(client)

    await asyncio.gather(*(open_one(i) for i in range(count)))
    print("open", flush=True)
    while tally.warm < count:
        await asyncio.sleep(0.05)
    print("joined", flush=True)
    deadline = time.monotonic() + DRAIN_TIMEOUT * 3
    while tally.done < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    counts = [client.count for client in clients]
    result = {"min": min(counts), "received": sum(counts), "last": tally.last}
    result |= {"bytes": tally.bytes, "latencies": tally.latencies}
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- the harness


class ClientProcess:
    def __init__(self, port: int, count: int, expected: int, deflate: bool) -> None:
        command = [sys.executable, __file__, "_clients", str(port), str(count), str(expected)]
        self.process = subprocess.Popen(
            [*command, *(["--deflate"] if deflate else [])], stdout=subprocess.PIPE
        )

    def expect(self, word: str) -> None:
        line = self.process.stdout.readline().decode().strip()  # type: ignore[union-attr]
        if line != word:
            raise RuntimeError(f"client process said {line!r}, not {word!r}")

    def result(self) -> dict[str, object]:
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        self.process.wait()
        return json.loads(line)


def start_server(
    kind: str, endpoint: str, port: int, deflate: bool, workdir: Path
) -> subprocess.Popen[bytes]:
    if kind == "baseline":
        command = [
            sys.executable,
            __file__,
            "_baseline",
            endpoint,
            str(port),
            *(["--deflate"] if deflate else []),
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE)
        if process.stdout is None or process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the baseline server did not start")
        return process
    config = workdir / "websocket.toml"
    config.write_text(f'compression = "{"deflate" if deflate else ""}"\n')
    metrics = f"127.0.0.1:{free_port()}"  # metrics on, as deployed
    args = [
        "--endpoint",
        endpoint,
        "--bind",
        f"127.0.0.1:{port}",
        "--metrics",
        metrics,
        "--config",
        str(config),
    ]
    return start_daemon("fedmsg_websocket", args)


def warm_up(pub: zmq.Socket, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        pub.send_multipart([WARMUP, b"{}"])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(kind: str, clients: int, deflate: bool, workdir: Path) -> dict[str, object]:
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    endpoint = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
    port = free_port()
    server = start_server(kind, endpoint, port, deflate, workdir)
    rate = min(50.0, LIGHT_DELIVERIES_PER_S / clients)
    latency_messages = max(3, int(rate * LATENCY_SECONDS))
    burst = max(20, min(2000, BURST_DELIVERIES // clients))
    expected = latency_messages + burst
    try:
        time.sleep(0.5)
        rss_empty = rss_kib(server.pid)
        shares = [
            clients // CLIENT_PROCESSES + (i < clients % CLIENT_PROCESSES) for i in range(CLIENT_PROCESSES)
        ]
        processes = [ClientProcess(port, share, expected, deflate) for share in shares if share]
        connect_start = time.monotonic()
        for process in processes:
            process.expect("open")
        connect_seconds = time.monotonic() - connect_start
        # Warm-ups until every client got one (ZeroMQ's slow joiner, then the subscription frames). The
        # thread is the only user of the PUB socket until it is joined.
        stop_warming = threading.Event()
        warmer = threading.Thread(target=warm_up, args=(pub, stop_warming, 1 / rate))
        warmer.start()
        for process in processes:
            process.expect("joined")
        stop_warming.set()
        warmer.join()
        time.sleep(1.0 + 1 / rate)  # the last warm-ups arrive
        rss_idle = rss_kib(server.pid)
        for index in range(latency_messages):
            pub.send_multipart([b"org.fedoraproject.prod.git.receive", body(index, "latency")])
            time.sleep(1 / rate)
        time.sleep(1.0)
        bodies = [body(latency_messages + index, "burst") for index in range(burst)]
        cpu_start = cpu_seconds(server.pid)
        burst_start = time.time()
        for payload in bodies:
            pub.send_multipart([b"org.fedoraproject.prod.git.receive", payload])
        results = [process.result() for process in processes]
        cpu = cpu_seconds(server.pid) - cpu_start
        rss_busy = rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(10)
        context.destroy(linger=0)
    last = max(float(result["last"]) for result in results)  # type: ignore[arg-type]
    elapsed = last - burst_start
    received_min = min(int(result["min"]) for result in results)  # type: ignore[call-overload]
    latencies = [value for result in results for value in result["latencies"]]  # type: ignore[attr-defined]
    return {
        "server": kind,
        "deflate": deflate,
        "clients": clients,
        "connect_s": round(connect_seconds, 2),
        "burst_messages": burst,
        "lost": clients * expected - sum(int(r["received"]) for r in results),  # type: ignore[call-overload]
        "fewest_received": received_min,
        "expected": expected,
        "deliveries_per_s": round(clients * burst / elapsed),
        "burst_s": round(elapsed, 3),
        "server_cpu_s": round(cpu, 2),
        "cpu_us_per_delivery": round(cpu / (clients * burst) * 1e6, 2),
        "latency_rate_msg_s": round(rate, 2),
        "latency_p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
        "rss_empty_kib": rss_empty,
        "rss_idle_kib": rss_idle,
        "rss_busy_kib": rss_busy,
        "idle_kib_per_client": round((rss_idle - rss_empty) / clients, 1),
        "wire_bytes_per_delivery": round(sum(int(r["bytes"]) for r in results) / (clients * expected)),  # type: ignore[call-overload]
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_baseline":
        asyncio.run(baseline_server(sys.argv[2], int(sys.argv[3]), "--deflate" in sys.argv))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_clients":
        raise_nofile()
        port, count, expected = (int(value) for value in sys.argv[2:5])
        asyncio.run(clients_process(port, count, expected, "--deflate" in sys.argv))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--counts", default="1,100,1000,19000", help="client counts, comma-separated")
    parser.add_argument(
        "--deflate-at", type=int, default=1000, help="also with permessage-deflate here (0: no)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per count (the machine is noisy: medians)"
    )
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    raise_nofile()
    runs = [(count, False) for count in map(int, args.counts.split(",")) for _ in range(args.repeat)]
    if args.deflate_at:
        runs += [(args.deflate_at, True)] * args.repeat
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for count, deflate in runs:
            pair = [run(kind, count, deflate, Path(workdir)) for kind in ("baseline", "fedmsg-websocket")]
            pair[1]["ratio"] = round(pair[1]["deliveries_per_s"] / pair[0]["deliveries_per_s"], 2)  # type: ignore[operator]
            for row in pair:
                print(json.dumps(row), flush=True)
            rows += pair
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print_table(rows)


def print_table(rows: list[dict[str, object]]) -> None:
    columns = [
        ("server", 17, "server"),
        ("deflate", 7, "deflate"),
        ("clients", 7, "clients"),
        ("deliveries_per_s", 9, "deliv/s"),
        ("ratio", 5, "ratio"),
        ("cpu_us_per_delivery", 8, "us/deliv"),
        ("latency_p50_ms", 7, "p50 ms"),
        ("latency_p99_ms", 7, "p99 ms"),
        ("idle_kib_per_client", 8, "KiB/idle"),
        ("wire_bytes_per_delivery", 7, "B/deliv"),
        ("lost", 5, "lost"),
    ]
    print()
    print(" ".join(f"{title:>{width}}" for _, width, title in columns))
    for row in rows:
        print(" ".join(f"{row.get(key, '')!s:>{width}}" for key, width, _ in columns))
    for count, deflate in sorted({(int(r["clients"]), bool(r["deflate"])) for r in rows}):  # type: ignore[call-overload]
        pairs = [r for r in rows if "ratio" in r and (r["clients"], r["deflate"]) == (count, deflate)]
        ratios = [float(r["ratio"]) for r in pairs]  # type: ignore[arg-type]
        print(f"{count} clients, deflate {deflate}: median ratio {statistics.median(ratios)}")


if __name__ == "__main__":
    main()
