#!/usr/bin/env python3
"""Load through haproxy: subscribers held, loss, latency, CPU and memory, ramped up to what one host allows.

  publisher (PUB, steady rate) -> fedmsg-gateway (the daemon, subprocess) -> haproxy (roles/haproxy's
  rendered config, subprocess) -> N subscriber connections, split over client processes

In the same run, a few direct subscriber connections to the gateway (one per DIRECT_EVERY) are the
baseline the haproxy path is compared with. Connections of each path are split into:
  bulk:   one XSUB connecting many times, drained by a C proxy and counted by bytes (never the bottleneck);
  probes: every PROBE_EVERY-th connection, read in Python: per-message latency (publish -> receive,
          CLOCK_MONOTONIC is system-wide) at every position of the gateway's fan-out order.
Lost = deliveries expected (messages x connections) - deliveries counted, after the backlog drained.
Every step: connect more, wait until haproxy's scur and the gateway's subscriber gauge show them, wait
until one message reaches them all, then publish at each rate for a while and wait for the drain.

  python bench/chain.py --seconds 10 --json chain.json --plot docs/chain-load.png   # ~15 minutes
  python bench/chain.py --rates                         # memory ramp only (no load), ~2 minutes
  python bench/chain.py --steps 200 --seconds 5 --rates 3   # smoke run
  python bench/chain.py --plot OUT.png --replot LOAD.json [MEMORY.json]   # redraw from saved results

First a memory ramp (connections only: idle RSS per step, slope = memory per connection), then the
load ramp on a fresh chain.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.connection
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq
from benchlib import (
    GreetingProbe,
    Haproxy,
    Sink,
    cpu_seconds,
    free_port,
    gateway_metrics,
    healthz_seconds,
    raise_nofile,
    rss_kib,
    start_gateway,
)

SIZE = 3000  # bytes per message, topic included: a median signed fedmsg message
LOAD = b"org.fedoraproject.prod.bench.load"
JOIN = b"org.fedoraproject.prod.bench.join"
_HEADER = struct.Struct("=qq")  # sequence, CLOCK_MONOTONIC ns at publish
PROBE_EVERY = 25  # one connection in 25 is read in Python for latency
DIRECT_EVERY = 20  # one direct connection to the gateway per 20 through haproxy (at least 20)
CLIENTS = 4  # client processes: fds per process, and CPU spread
PATHS = ("haproxy", "direct")


def _message(topic: bytes, sequence: int) -> list[bytes]:
    header = _HEADER.pack(sequence, time.monotonic_ns())
    return [topic, header + b"x" * (SIZE - len(topic) - len(header))]


# --- client process -----------------------------------------------------------------------------


class _Path:
    """One path's connections inside a client: C-drained bulk sinks and Python-read probes."""

    def __init__(self, ctx: zmq.Context, url: str) -> None:
        self.ctx, self.url = ctx, url
        self.sinks: list[Sink] = []
        self.probe = ctx.socket(zmq.XSUB)
        self.probe.setsockopt(zmq.RCVHWM, 0)
        self.probe.setsockopt(zmq.LINGER, 0)
        self.probe.send(b"\x01")
        self.probes = 0
        self.probe_deliveries = 0
        self.latencies: list[int] = []

    def add(self, bulk: int, probes: int) -> None:
        for _ in range(probes):
            self.probe.connect(self.url)
        self.probes += probes
        if bulk:
            # A new sink per step: the C proxy owns its socket, no connect() from this thread.
            self.sinks.append(Sink(self.ctx, self.url, bulk, SIZE))

    def deliveries(self) -> int:
        return sum(sink.deliveries() for sink in self.sinks) + self.probe_deliveries

    def read(self) -> None:
        while True:
            try:
                topic, body = self.probe.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            now = time.monotonic_ns()
            self.probe_deliveries += 1
            if topic.bytes == LOAD:
                self.latencies.append(now - _HEADER.unpack_from(body.buffer)[1])


def client(conn: multiprocessing.connection.Connection, urls: dict[str, str]) -> None:
    raise_nofile()
    ctx = zmq.Context()
    paths = {name: _Path(ctx, url) for name, url in urls.items()}
    poller = zmq.Poller()
    for path in paths.values():
        poller.register(path.probe, zmq.POLLIN)
    poller.register(conn.fileno(), zmq.POLLIN)
    while True:
        poller.poll(100)
        for path in paths.values():
            path.read()
        if not conn.poll():
            continue
        command, *args = conn.recv()
        if command == "add":
            name, bulk, probes = args
            paths[name].add(bulk, probes)
            conn.send(None)
        elif command == "count":
            conn.send({name: path.deliveries() for name, path in paths.items()})
        elif command == "latencies":
            conn.send({name: path.latencies for name, path in paths.items()})
            for path in paths.values():
                path.latencies = []
        elif command == "stop":
            for path in paths.values():
                for sink in path.sinks:
                    sink.close()
            ctx.destroy(linger=0)
            conn.send(None)
            return


# --- controller ---------------------------------------------------------------------------------


class Clients:
    def __init__(self, urls: dict[str, str]) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for _ in range(CLIENTS):
            ours, theirs = spawn.Pipe()
            process = spawn.Process(target=client, args=(theirs, urls), daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)
        self.connections = dict.fromkeys(PATHS, 0)

    def ask(self, *command: object) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def add(self, path: str, total: int) -> None:
        """Connect until `path` holds `total` connections, spread over the client processes."""
        new = total - self.connections[path]
        for index, pipe in enumerate(self.pipes):
            share = new // CLIENTS + (1 if index < new % CLIENTS else 0)
            probes = max(1, share // PROBE_EVERY) if share else 0
            pipe.send(("add", path, share - probes, probes))
        for pipe in self.pipes:
            pipe.recv()
        self.connections[path] = total

    def deliveries(self) -> dict[str, int]:
        counts = self.ask("count")
        return {path: sum(count[path] for count in counts) for path in PATHS}

    def latencies_ms(self) -> dict[str, list[float]]:
        replies = self.ask("latencies")
        return {path: sorted(ns / 1e6 for reply in replies for ns in reply[path]) for path in PATHS}

    def cpu(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes if process.pid)

    def stop(self) -> None:
        self.ask("stop")


def _percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))] if values else float("nan")


def _milliseconds(seconds: list[float]) -> dict[str, float]:
    """Median and max of sorted durations, in ms."""
    return {"p50": _percentile(seconds, 0.5) * 1000, "max": seconds[-1] * 1000 if seconds else float("nan")}


class Bench:
    def __init__(self, workdir: Path) -> None:
        self.ctx = zmq.Context()
        self.publisher = self.ctx.socket(zmq.PUB)
        self.publisher.setsockopt(zmq.SNDHWM, 0)
        source = f"tcp://127.0.0.1:{self.publisher.bind_to_random_port('tcp://127.0.0.1')}"
        self.gateway_port = gateway_port = free_port()
        self.health_port = free_port()
        self.metrics = f"127.0.0.1:{free_port()}"
        self.gateway = start_gateway(
            [source],
            [f"tcp://127.0.0.1:{gateway_port}"],
            self.metrics,
            health=f"127.0.0.1:{self.health_port}",
        )
        self.haproxy = Haproxy(workdir, [gateway_port], self.health_port)
        self.clients = Clients({"haproxy": self.haproxy.url, "direct": f"tcp://127.0.0.1:{gateway_port}"})
        self.sequence = 0

    def hold(self, subscribers: int) -> dict[str, int]:
        direct = max(20, subscribers // DIRECT_EVERY)
        self.clients.add("haproxy", subscribers)
        self.clients.add("direct", direct)
        deadline = time.monotonic() + 120
        while True:
            held = {
                "haproxy_sessions": self.haproxy.sessions(),
                "gateway_subscribers": int(gateway_metrics(self.metrics)["subscribers"]),
            }
            if held == {"haproxy_sessions": subscribers, "gateway_subscribers": subscribers + direct}:
                break
            if time.monotonic() > deadline:
                sys.exit(f"connections did not come up: {held}, wanted {subscribers} + {direct} direct")
            time.sleep(0.5)
        self._join()
        return held | {"direct": direct}

    def _join(self) -> None:
        """Publish join messages until one reaches every connection (their subscriptions are in)."""
        wanted = self.clients.connections
        for _ in range(120):
            before = self.clients.deliveries()
            self.publisher.send_multipart(_message(JOIN, -1))
            settle = time.monotonic() + 3
            while time.monotonic() < settle:
                got = {path: count - before[path] for path, count in self.clients.deliveries().items()}
                if got == wanted:
                    return
                time.sleep(0.1)
        sys.exit("subscribers never all joined")

    def run(self, rate: float, seconds: float) -> dict[str, Any]:
        """Publish at `rate` for `seconds`, wait for the drain: what arrived, how fast, at what cost."""
        count = max(1, round(rate * seconds))
        before = self.clients.deliveries()
        self.clients.latencies_ms()  # discard
        pids = {"haproxy": self.haproxy.process.pid, "gateway": self.gateway.pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"clients": self.clients.cpu()}
        rss_peak = dict.fromkeys(pids, 0)
        churn_before = self.haproxy.churn()
        greetings = GreetingProbe(self.gateway_port)
        healthz = GreetingProbe(self.health_port, measure=healthz_seconds)
        start = time.monotonic()
        for index in range(count):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publisher.send_multipart(_message(LOAD, self.sequence))
            self.sequence += 1
            if index % max(1, int(rate)) == 0:
                rss_peak = {name: max(rss_peak[name], rss_kib(pid)) for name, pid in pids.items()}
        published = time.monotonic()
        expected = {path: count * held for path, held in self.clients.connections.items()}
        got, last, last_change = dict.fromkeys(PATHS, 0), -1, time.monotonic()
        while got != expected and time.monotonic() - last_change < 15:
            time.sleep(0.2)
            got = {path: n - before[path] for path, n in self.clients.deliveries().items()}
            rss_peak = {name: max(rss_peak[name], rss_kib(pid)) for name, pid in pids.items()}
            if sum(got.values()) != last:
                last, last_change = sum(got.values()), time.monotonic()
        greeting_s = greetings.stop()
        healthz_s = healthz.stop()
        drained = last_change - published
        elapsed = last_change - start
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / elapsed for name, pid in pids.items()}
        cpu["clients"] = (self.clients.cpu() - cpu_before["clients"]) / elapsed
        latencies = self.clients.latencies_ms()
        churn = {name: count - churn_before[name] for name, count in self.haproxy.churn().items()}
        return {
            "rate": rate,
            "messages": count,
            "lost": {path: expected[path] - got[path] for path in PATHS},
            "deliveries_per_s": sum(got.values()) / elapsed,
            "backlog_drained_s": max(0.0, drained),
            "latency_ms": {
                path: {"p50": _percentile(values, 0.5), "p99": _percentile(values, 0.99), "n": len(values)}
                for path, values in latencies.items()
            },
            "cpu_cores": cpu,
            "rss_peak_kib": rss_peak,
            # Lost deliveries with sessions_opened > 0 were sessions cut and re-made, not queue drops.
            "haproxy_churn": churn,
            # The ZMTP greeting (what haproxy checked before) and /healthz (what it checks now).
            "gateway_greeting_ms": _milliseconds(greeting_s),
            "gateway_healthz_ms": _milliseconds(healthz_s),
        }

    def idle_rss(self) -> dict[str, int]:
        time.sleep(1)
        return {"haproxy": rss_kib(self.haproxy.process.pid), "gateway": rss_kib(self.gateway.pid)}

    def close(self) -> None:
        self.clients.stop()
        self.haproxy.stop()
        self.gateway.terminate()
        self.gateway.wait(10)
        self.ctx.destroy(linger=0)


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope: the marginal cost of one more connection."""
    return statistics.linear_regression([x for x, _ in points], [y for _, y in points]).slope


def summarise(steps: list[dict[str, Any]]) -> dict[str, float]:
    haproxy = [(s["held"]["haproxy_sessions"], s["idle_rss_kib"]["haproxy"] * 1024) for s in steps]
    gateway = [(s["held"]["gateway_subscribers"], s["idle_rss_kib"]["gateway"] * 1024) for s in steps]
    per = {"haproxy_bytes_per_session": _slope(haproxy), "gateway_bytes_per_subscriber": _slope(gateway)}
    base = {"haproxy": haproxy[0][1] - per["haproxy_bytes_per_session"] * haproxy[0][0]}
    base["gateway"] = gateway[0][1] - per["gateway_bytes_per_subscriber"] * gateway[0][0]
    return per | {
        "haproxy_mib_at_160000_estimate": (base["haproxy"] + 160000 * per["haproxy_bytes_per_session"])
        / 2**20,
        "gateway_mib_at_160000_estimate": (base["gateway"] + 160000 * per["gateway_bytes_per_subscriber"])
        / 2**20,
    }


def print_step(step: dict[str, Any]) -> None:
    held, rss = step["held"], step["idle_rss_kib"]
    print(f"\n{held['haproxy_sessions']} sessions via haproxy (+{held['direct']} direct); idle RSS", end=" ")
    print(f"haproxy {rss['haproxy'] / 1024:.1f} MiB, gateway {rss['gateway'] / 1024:.1f} MiB")
    for run in step["runs"]:
        lat, cpu, lost = run["latency_ms"], run["cpu_cores"], run["lost"]
        print(
            f"  {run['rate']:5g} msg/s x {run['messages']:4}: lost {lost['haproxy']}/{lost['direct']}"
            f" | p50/p99 ms haproxy {lat['haproxy']['p50']:.1f}/{lat['haproxy']['p99']:.1f}"
            f" direct {lat['direct']['p50']:.1f}/{lat['direct']['p99']:.1f}"
            f" | {run['deliveries_per_s']:,.0f} deliveries/s, drained +{run['backlog_drained_s']:.1f} s"
            f" | CPU cores haproxy {cpu['haproxy']:.2f} gateway {cpu['gateway']:.2f}"
            f" clients {cpu['clients']:.2f}"
            f" | haproxy: {run['haproxy_churn']['sessions_opened']} sessions opened,"
            f" {run['haproxy_churn']['failed_checks']} failed checks,"
            f" {run['haproxy_churn']['server_down_transitions']} server down"
            f" | ZMTP greeting ms p50/max {run['gateway_greeting_ms']['p50']:.0f}"
            f"/{run['gateway_greeting_ms']['max']:.0f}"
            f" | /healthz ms p50/max {run['gateway_healthz_ms']['p50']:.0f}"
            f"/{run['gateway_healthz_ms']['max']:.0f}"
        )


def plot(result: dict[str, Any], target: str) -> None:
    import matplotlib  # noqa: PLC0415  (only for --plot)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    steps = result["steps"]
    subscribers = [s["held"]["haproxy_sessions"] for s in steps]
    figure, (latency, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run_index, style in ((0, "-"), (len(steps[0]["runs"]) - 1, "--")):
        rate = steps[0]["runs"][run_index]["rate"]
        for path, colour in (("haproxy", "tab:blue"), ("direct", "tab:orange")):
            for pct, marker in (("p50", "o"), ("p99", "^")):
                values = [s["runs"][run_index]["latency_ms"][path][pct] for s in steps]
                label = f"{path} {pct}, {rate:g} msg/s"
                latency.plot(subscribers, values, style, marker=marker, color=colour, label=label)
        if run_index == len(steps[0]["runs"]) - 1:
            break
    latency.set_yscale("log")
    latency.set_xlabel("subscribers through haproxy")
    latency.set_ylabel("publish -> receive latency (ms, log)")
    latency.legend(fontsize=7)
    latency.grid(alpha=0.3)
    ramp_steps = result["memory_ramp"]
    held = [s["held"]["haproxy_sessions"] for s in ramp_steps]
    for name, colour in (("haproxy", "tab:blue"), ("gateway", "tab:green")):
        rss = [s["idle_rss_kib"][name] / 1024 for s in ramp_steps]
        memory.plot(held, rss, "-o", color=colour, label=name)
    memory.set_xlabel("subscribers through haproxy")
    memory.set_ylabel("resident memory, no load (MiB)")
    memory.legend()
    memory.grid(alpha=0.3)
    figure.suptitle(
        f"fedmsg chain on one 2-core host, {SIZE} B messages ({result['environment']})", fontsize=9
    )
    figure.tight_layout()
    figure.savefig(target, dpi=110)


def ramp(args: argparse.Namespace, rates: list[float]) -> list[dict[str, Any]]:
    """Connect up to each step in turn on a fresh chain; at each, idle RSS and a run per rate."""
    steps = []
    with tempfile.TemporaryDirectory(prefix="chain-") as workdir:
        bench = Bench(Path(workdir))
        try:
            for subscribers in args.steps:
                held = bench.hold(subscribers)
                step = {"held": held, "idle_rss_kib": bench.idle_rss()}
                step["runs"] = [bench.run(rate, args.seconds) for rate in rates]
                print_step(step)
                steps.append(step)
        finally:
            bench.close()
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 1000, 2000, 4000, 6000, 8000, 9500])
    parser.add_argument("--rates", type=float, nargs="*", default=[3, 100], help="msg/s, each step")
    parser.add_argument("--seconds", type=float, default=20, help="publishing time per rate")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="draw latency and memory against subscribers into this PNG")
    parser.add_argument("--replot", nargs="+", metavar="JSON", help="only redraw --plot from saved results")
    args = parser.parse_args()
    if args.replot:
        # LOAD.json [MEMORY.json]: latency from the first, the memory ramp from the last.
        saved = [json.loads(Path(name).read_text()) for name in args.replot]
        plot(saved[0] | {"memory_ramp": saved[-1]["memory_ramp"]}, args.plot)
        return
    raise_nofile()
    environment = f"python {sys.version.split()[0]}, pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}"
    print(f"{environment}, {os.cpu_count()} CPUs, {CLIENTS} client processes; {SIZE} B messages")
    # Memory first, on a chain that never carried load: a backlog's memory stays with the allocator
    # and would blur the cost of a connection.
    print("memory ramp (connections only, no load):")
    memory_ramp = ramp(args, [])
    result: dict[str, Any] = {"environment": environment, "seconds": args.seconds, "memory_ramp": memory_ramp}
    if len(memory_ramp) > 1:
        result["memory"] = summarise(memory_ramp)
        print("\nmemory per connection (slope of idle RSS):", json.dumps(result["memory"], indent=1))
    if args.rates:
        print("\nload ramp; lost = haproxy/direct deliveries missing after the drain; latency from probes")
        result["steps"] = ramp(args, args.rates)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.plot and args.rates:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
