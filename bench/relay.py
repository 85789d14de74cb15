#!/usr/bin/env python3
"""Benchmark: fedmsg-gateway (subprocess, metrics on) against plain libzmq zmq.proxy(SUB, PUB).

Both relays sit between the same kind of source and sink, each running at C speed so that neither
end is the bottleneck a Python loop would be:

  source: N messages pre-queued on an inproc PUSH, then released in one burst by a C proxy thread
          onto a tcp PUB (no HWM) that the relay connects to;
  sink:   one XSUB connecting K times to the relay (K subscriber connections, subscribed to all with
          b"\\x01"), drained by a C proxy thread into a PUB nobody reads; its STATISTICS byte counter
          says how many deliveries arrived (every message has the same size).

A burst of N <= the relay's send HWM (160000) can never be dropped by the relay, and any shortfall
is reported as drops. Throughput = deliveries / (last delivery seen - burst release).

  python bench/relay.py                    # full run, 5 repetitions, about 2-3 minutes
  python bench/relay.py --quick            # smoke run
  python bench/relay.py --through-haproxy  # each relay behind its own haproxy, configured as
                                           # roles/haproxy renders it (the fan-out cases only)
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import zmq
from benchlib import Haproxy, Sink, StandInHealth, Steered, free_port, raise_nofile, start_gateway

HWM = 160000  # the gateway's default, given to the plain proxy too
TOPIC = b"org.fedoraproject.prod.bench.message"
_POLL = 0.005  # seconds between looks at the sink's counters
_QUIET = 1.0  # a burst is over (with drops) when nothing arrived for this long


@dataclass(frozen=True)
class Case:
    name: str
    size: int  # bytes per two-frame message, topic included
    subscribers: int
    messages: int  # per burst


CASES = [
    Case("300 B x 1 subscriber", 300, 1, 150_000),
    Case("3 KB x 1 subscriber", 3000, 1, 60_000),
    Case("3 KB x 100 subscribers", 3000, 100, 2_000),
    Case("3 KB x 1000 subscribers", 3000, 1000, 200),
]


def _message(size: int) -> list[bytes]:
    return [TOPIC, b"x" * (size - len(TOPIC))]


class Lane:
    """Source -> relay under test (a subprocess) -> sink."""

    def __init__(self, ctx: zmq.Context, kind: str, front: Path | None = None) -> None:
        self.kind = kind
        self._ctx = ctx
        self._source = ctx.socket(zmq.PUB)
        self._source.setsockopt(zmq.SNDHWM, 0)
        self._source.setsockopt(zmq.LINGER, 0)
        source_url = f"tcp://127.0.0.1:{self._source.bind_to_random_port('tcp://127.0.0.1')}"
        self.relay_url = f"tcp://127.0.0.1:{free_port()}"
        self.metrics = f"127.0.0.1:{free_port()}"
        self.health_port = free_port()
        # zmq.proxy has no /healthz: haproxy's check asks a stand-in in this process instead.
        self._stand_in = StandInHealth() if kind == "zmq.proxy" else None
        if self._stand_in is not None:
            self.health_port = self._stand_in.port
        self.process = self._start_relay(kind, source_url)
        # Optionally behind haproxy: subscribers then connect to it, and it to the relay.
        self.haproxy: Haproxy | None = None
        self.sink_url = self.relay_url
        if front is not None:
            relay_port = int(self.relay_url.rsplit(":", 1)[1])
            self.haproxy = Haproxy(front, [relay_port], self.health_port, maxconn=4000)
            self.sink_url = self.haproxy.url

    def _start_relay(self, kind: str, source_url: str) -> subprocess.Popen[bytes]:
        if kind == "zmq.proxy":
            process = subprocess.Popen(
                [sys.executable, __file__, "--plain-proxy", source_url, self.relay_url],
                stdout=subprocess.PIPE,
            )
            if process.stdout is None or process.stdout.readline() != b"ready\n":
                sys.exit("plain proxy did not start")
            return process
        return start_gateway(
            [source_url], [self.relay_url], self.metrics, health=f"127.0.0.1:{self.health_port}"
        )

    def connect_sink(self, subscribers: int, size: int) -> Sink:
        sink = Sink(self._ctx, self.sink_url, subscribers, size)
        self._join(sink)
        return sink

    def _join(self, sink: Sink) -> None:
        """Probe until one message reaches every subscriber connection (slow joiners are in)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            before = sink.deliveries()
            self._source.send_multipart(_message(sink.size))
            settled = time.monotonic() + 0.5
            while sink.deliveries() < before + sink.subscribers and time.monotonic() < settled:
                time.sleep(0.02)
            if sink.deliveries() == before + sink.subscribers:
                return
        sys.exit(f"{self.kind}: subscribers never all joined")

    def burst(self, sink: Sink, messages: int) -> tuple[float, int]:
        """Release `messages` at once; return (deliveries per second, dropped deliveries)."""
        address = f"inproc://burst-{uuid.uuid4().hex}"
        queue = self._ctx.socket(zmq.PULL)
        queue.setsockopt(zmq.RCVHWM, 0)
        queue.bind(address)
        loader = self._ctx.socket(zmq.PUSH)
        loader.setsockopt(zmq.SNDHWM, 0)
        loader.connect(address)
        frames = _message(sink.size)
        for _ in range(messages):
            loader.send_multipart(frames)
        expected = messages * sink.subscribers
        start = sink.deliveries()
        released = time.perf_counter()
        source = Steered(self._ctx, queue, self._source)
        seen, last_change = 0, released
        while seen < expected:
            time.sleep(_POLL)
            now = time.perf_counter()
            count = sink.deliveries() - start
            if count != seen:
                seen, last_change = count, now
            elif now - last_change > _QUIET:
                break
        source.stop()
        loader.close(linger=0)
        queue.close(linger=0)
        return seen / (last_change - released), expected - seen

    def close(self) -> str:
        """Stop the relay; for the daemon, return its own metrics as a cross-check."""
        page = ""
        if self.kind == "fedmsg-gateway":
            time.sleep(1.5)  # the daemon refreshes its counters about once a second
            with socket.create_connection(tuple(self.metrics.split(":"))) as conn:  # type: ignore[arg-type]
                conn.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                page = b"".join(iter(lambda: conn.recv(65536), b"")).decode()
        self._source.close(linger=0)
        if self.haproxy is not None:
            self.haproxy.stop()
        if self._stand_in is not None:
            self._stand_in.stop()
        self.process.terminate()
        self.process.wait(10)
        return page


def plain_proxy(source_url: str, bind_url: str) -> None:
    """The baseline: libzmq's zmq.proxy between a SUB and a PUB with the gateway's HWMs."""
    ctx = zmq.Context()
    frontend = ctx.socket(zmq.SUB)
    frontend.setsockopt(zmq.RCVHWM, HWM)
    frontend.setsockopt(zmq.SUBSCRIBE, b"")
    frontend.connect(source_url)
    backend = ctx.socket(zmq.PUB)
    backend.setsockopt(zmq.SNDHWM, HWM)
    backend.bind(bind_url)
    print("ready", flush=True)
    zmq.proxy(frontend, backend)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one short repetition per case")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument(
        "--through-haproxy", action="store_true", help="subscribers connect through the role's haproxy"
    )
    parser.add_argument("--plain-proxy", nargs=2, metavar=("SOURCE", "BIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_proxy:
        plain_proxy(*args.plain_proxy)
        return
    # 1000 subscriber connections need 1000 descriptors on each side; children inherit the limit.
    raise_nofile()
    repetitions = 1 if args.quick else args.repetitions
    scale = 5 if args.quick else 1
    print(f"python {sys.version.split()[0]}, pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, ", end="")
    print(f"{os.cpu_count()} CPUs, {repetitions} repetition(s), medians (spread = (max - min) / median)")
    ctx = zmq.Context()
    cases = CASES
    with tempfile.TemporaryDirectory(prefix="relay-") as workdir:
        if args.through_haproxy:
            # Fan-out is what haproxy adds work to; bursts 5x longer for steadier figures.
            cases = [Case(c.name, c.size, c.subscribers, 5 * c.messages) for c in CASES if c.subscribers > 1]
            fronts = [Path(workdir, "gateway"), Path(workdir, "proxy")]
            for front in fronts:
                front.mkdir()
            print("subscribers connect through haproxy (roles/haproxy/templates/haproxy.cfg.j2)")
            lanes = [Lane(ctx, "fedmsg-gateway", fronts[0]), Lane(ctx, "zmq.proxy", fronts[1])]
        else:
            lanes = [Lane(ctx, "fedmsg-gateway"), Lane(ctx, "zmq.proxy")]
        run(lanes, cases, repetitions, scale)
    ctx.destroy(linger=0)


def run(lanes: list[Lane], cases: list[Case], repetitions: int, scale: int) -> None:
    head = f"{'deliveries/s':24} {'gateway':>11} {'spread':>6} {'zmq.proxy':>11} {'spread':>6}"
    print(f"{head} {'ratio':>6} {'drops':>6}")
    for case in cases:
        sinks = {lane.kind: lane.connect_sink(case.subscribers, case.size) for lane in lanes}
        rates: dict[str, list[float]] = {lane.kind: [] for lane in lanes}
        drops = 0
        for repetition in range(repetitions):
            # Alternate which relay goes first so that drifting background load hits both alike.
            for lane in lanes if repetition % 2 == 0 else lanes[::-1]:
                rate, dropped = lane.burst(sinks[lane.kind], max(case.messages // scale, 1))
                rates[lane.kind].append(rate)
                drops += dropped
        for sink in sinks.values():
            # Closed before the next case, or its connections would keep taking deliveries.
            sink.close()
        gateway = statistics.median(rates["fedmsg-gateway"])
        proxy = statistics.median(rates["zmq.proxy"])
        spread = {kind: (max(v) - min(v)) / statistics.median(v) for kind, v in rates.items()}
        row = f"{case.name:24} {gateway:11,.0f} {spread['fedmsg-gateway']:6.0%}"
        print(f"{row} {proxy:11,.0f} {spread['zmq.proxy']:6.0%} {gateway / proxy:6.2f} {drops:6}")
    page = lanes[0].close()
    lanes[1].close()
    received = [line for line in page.splitlines() if line.startswith("fedmsg_gateway_") and "_total" in line]
    print("gateway's own counters at the end:", "; ".join(received))


if __name__ == "__main__":
    main()
