"""GET /raw requests per second through the role's haproxy (TLS), against /healthz through the same haproxy.

The real fedmsg-websocket from src/ keeps a window of MESSAGES bus messages of ~3 KB (a 10-minute
backlog at 10 msg/s by default); haproxy runs with roles/haproxy's own template (TLS on the browser
stream's listen, its per-source limits off: every client here is 127.0.0.1). CLIENTS processes each
hold one TLS keep-alive connection to haproxy and send requests one after the other for SECONDS:
- baseline: GET /healthz (the daemon answers from memory: what haproxy, TLS and the HTTP path cost);
- raw: GET /raw?start=..&end=..&order=asc&rows_per_page=100&page=P over the whole window, P cycling
  through every page (100 bodies, ~300 KB per answer).
Alternated REPEAT times; medians. Prints a table, and JSON with --json.

    .venv/bin/python bench/raw.py [--messages 6000] [--clients 4] [--seconds 5] [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import zmq
from benchlib import free_port, raise_nofile, start_daemon
from kit.haproxy_role import RoleHaproxy  # benchlib puts tests/ on the path: the tests' kit

TOPIC = "org.fedoraproject.prod.bench.raw"


def body(index: int) -> bytes:
    """A ~3 KB fedmsg-like body with an int timestamp, as Fedora's signed messages are."""
    message = {
        "i": index,
        "msg_id": f"2026-{index:012d}",
        "timestamp": int(time.time()),
        "topic": TOPIC,
        "username": "bench",
        "msg": {"summary": "x" * 2400},
        "signature": "s" * 344,
        "certificate": "",
    }
    return json.dumps(message).encode()


def fill_window(endpoint: str, daemon: str, count: int) -> tuple[int, int]:
    """Publish COUNT messages the daemon keeps; returns the (start, end) that covers them."""
    publisher = zmq.Context.instance().socket(zmq.PUB)
    publisher.setsockopt(zmq.SNDHWM, 0)
    publisher.bind(endpoint)
    time.sleep(1.5)  # the daemon's SUB reconnects within its 1 s back-off
    start = int(time.time())
    for index in range(count):
        publisher.send_multipart([TOPIC.encode(), body(index)])
        if index % 500 == 499:
            time.sleep(0.05)
    end = int(time.time()) + 1
    query = f"start={start}&end={end}&rows_per_page=1"
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(f"http://{daemon}/raw?{query}", timeout=10) as answer:
            if json.load(answer)["total"] >= count:
                break
        if time.monotonic() > deadline:
            sys.exit(f"the window did not reach {count} messages in 60 s")
        time.sleep(0.2)
    publisher.close()
    return start, end


def client(port: int, cafile: str, paths: list[str], seconds: float, results: multiprocessing.Queue) -> None:
    """Requests one after the other on one keep-alive connection: (count, latencies in ms, bytes)."""
    context = ssl.create_default_context(cafile=cafile)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    latencies, received, index = [], 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        began = time.monotonic()
        connection.request("GET", paths[index % len(paths)])
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            results.put(("error", f"{paths[index % len(paths)]}: {response.status} {payload[:200]!r}"))
            return
        latencies.append((time.monotonic() - began) * 1000)
        received += len(payload)
        index += 1
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
    connection.close()
    results.put(("ok", (len(latencies), latencies, received)))


def measure(port: int, cafile: str, paths: list[str], clients: int, seconds: float) -> dict[str, float]:
    results: multiprocessing.Queue = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=client, args=(port, cafile, paths, seconds, results))
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join()
    errors = [detail for kind, detail in answers if kind == "error"]
    if errors:
        sys.exit(f"requests failed: {errors[0]}")
    count = sum(detail[0] for _, detail in answers)
    latencies = sorted(latency for _, detail in answers for latency in detail[1])
    return {
        "requests_per_s": count / seconds,
        "median_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "mb_per_s": sum(detail[2] for _, detail in answers) / seconds / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=6000, help="window size (10 min at 10 msg/s)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="bench-raw-"))
    state = workdir / "state"
    state.mkdir()
    bus = f"tcp://127.0.0.1:{free_port()}"
    daemon_port = free_port()
    daemon = start_daemon(
        "fedmsg_websocket",
        ["--endpoint", bus, "--bind", f"127.0.0.1:{daemon_port}", "--metrics", "", "--state-dir", str(state)],
    )
    proxy = None
    try:
        start, end = fill_window(bus, f"127.0.0.1:{daemon_port}", args.messages)
        proxy = RoleHaproxy(
            workdir / "haproxy",
            "127.0.0.1",
            ["127.0.0.1"],
            daemon_port,
            haproxy_websocket_max_raw_per_source=0,
            haproxy_websocket_max_streams_per_source=0,
            haproxy_websocket_max_conn_per_source=0,
        )
        proxy.wait_servers_up(1)
        pages = (args.messages + 99) // 100
        kinds = {
            "healthz (baseline)": ["/healthz"],
            "raw": [
                f"/raw?start={start}&end={end}&order=asc&rows_per_page=100&page={page}"
                for page in range(1, pages + 1)
            ],
        }
        runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
        for _ in range(args.repeat):
            for kind, paths in kinds.items():
                runs[kind].append(measure(proxy.port, proxy.cafile, paths, args.clients, args.seconds))
    finally:
        if proxy is not None:
            proxy.stop()
        daemon.terminate()
        daemon.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    table = {
        kind: {key: statistics.median(run[key] for run in results) for key in results[0]}
        for kind, results in runs.items()
    }
    ratio = table["raw"]["requests_per_s"] / table["healthz (baseline)"]["requests_per_s"]
    print(
        f"{args.messages} messages in the window, {args.clients} clients, {args.seconds:g} s x {args.repeat}"
    )
    print(f"{'':20} {'req/s':>8} {'median ms':>10} {'p99 ms':>8} {'MB/s':>7}")
    for kind, row in table.items():
        print(
            f"{kind:20} {row['requests_per_s']:8.0f} {row['median_ms']:10.1f} {row['p99_ms']:8.1f}"
            f" {row['mb_per_s']:7.1f}"
        )
    print(f"raw / healthz: {ratio:.2f}x requests per second (load average {os.getloadavg()[0]:.1f})")
    if args.json:
        figures = {
            "arguments": vars(args) | {"json": str(args.json)},
            "medians": table,
            "runs": runs,
            "ratio": ratio,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
