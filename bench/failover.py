#!/usr/bin/env python3
"""Health checks side by side on one saturated gateway: false DOWNs under load, time to DOWN when it freezes.

  publisher (PUB, steady rate) -> fedmsg-gateway (the daemon) -> haproxy (the role's configuration)
                                                               -> SUBSCRIBERS connections (C-drained)

and, in the same run, more haproxy processes with no clients, each health-checking the same gateway
another way (the role's configuration with only its check lines changed):

  healthz          the role's check: GET /healthz on the daemon's health port (a Python thread, outside
                   libzmq's I/O thread), with the role's timings (inter 1s, fastinter 250ms, fall 3, rise 2,
                   timeout check 1s; the recorded run had fastinter 500ms, fall 2)
  greeting-short   the ZMTP greeting on the public port (libzmq's I/O thread) with the same short timings
  greeting-before  the ZMTP greeting with the timings the role had before: inter 2s, fall 3, timeout check 5s
  agent            greeting-before plus haproxy's agent-check (every 1 s) against an agent that answers
                   "up" while /healthz is 200, "down" otherwise, and is frozen with the gateway

Each round: a fresh chain; subscribers connect and join; the publisher sends RATE msg/s for SECONDS
while probes time the greeting and /healthz every 0.5 s (what the checks wait for); each haproxy's
failed checks and DOWN transitions are read before and after (a false DOWN would cut every session);
then the gateway (and the agent) get SIGSTOP, as `podman pause` freezes a container: the kernel still
completes TCP handshakes, nothing answers. Time from the freeze to each haproxy's first failed check
and to DOWN. Rounds alternate the daemon's `io_threads` (1, the default, and 2: does a second I/O
thread keep the greeting fast, does the fan-out rate change?).

  python bench/failover.py --subscribers 6000 --repeat 2 --json bench/results/failover.json   # ~8 min
  python bench/failover.py --subscribers 500 --seconds 5 --repeat 1 --io-threads 1             # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from benchlib import (
    GreetingProbe,
    Haproxy,
    Sink,
    free_port,
    gateway_metrics,
    healthz_seconds,
    raise_nofile,
    start_gateway,
)

SIZE = 3000
TOPIC = b"org.fedoraproject.prod.bench.failover"
GREETING = "    option tcp-check\n    tcp-check connect\n    tcp-check expect binary ff00000000000000017f\n"


def _greeting_check(inter: str, fastinter: str, fall: int, timeout: str) -> Callable[[str], str]:
    def edit(config: str) -> str:
        config, checks = re.subn(
            r"    option httpchk\n.*?http-check expect status 200\n", GREETING, config, flags=re.S
        )
        config, timeouts = re.subn(r"timeout check \S+", f"timeout check {timeout}", config)
        config, servers = re.subn(
            r"check port \d+ inter \S+ fastinter \S+ fall \d+ rise \d+",
            f"check inter {inter} fastinter {fastinter} fall {fall} rise 2",
            config,
        )
        if (checks, timeouts, servers) != (1, 1, 1):
            sys.exit("the role's check lines changed: update bench/failover.py")
        return config

    return edit


def _with_agent(agent_port: int) -> Callable[[str], str]:
    before = _greeting_check("2s", "2s", 3, "5s")

    def edit(config: str) -> str:
        config = before(config)
        return config.replace(
            " on-marked-down", f" agent-check agent-port {agent_port} agent-inter 1s on-marked-down"
        )

    return edit


def agent(port: int, health_port: int) -> None:
    """haproxy's agent protocol: one line per connection, "up" while /healthz answers 200, else "down"."""
    with socket.create_server(("127.0.0.1", port)) as server:
        print("ready", flush=True)
        while True:
            conn, _ = server.accept()
            with conn:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=1) as page:
                        state = "up" if page.status == 200 else "down"
                except OSError:
                    state = "down"
                with contextlib.suppress(OSError):  # haproxy gave up on this check already
                    conn.sendall(f"{state}\n".encode())


class Round:
    """One chain: the gateway, one haproxy per candidate, subscribers through the first."""

    def __init__(self, workdir: Path, io_threads: int, subscribers: int) -> None:
        self.ctx = zmq.Context(io_threads=2)
        self.ctx.set(zmq.MAX_SOCKETS, 4096)
        self.publisher = self.ctx.socket(zmq.PUB)
        self.publisher.setsockopt(zmq.SNDHWM, 0)
        source = f"tcp://127.0.0.1:{self.publisher.bind_to_random_port('tcp://127.0.0.1')}"
        self.port, self.health_port, self.agent_port = free_port(), free_port(), free_port()
        self.metrics = f"127.0.0.1:{free_port()}"
        config = workdir / "gateway.toml"
        config.write_text(f"io_threads = {io_threads}\n")
        self.gateway = start_gateway(
            [source],
            [f"tcp://127.0.0.1:{self.port}"],
            self.metrics,
            config=config,
            health=f"127.0.0.1:{self.health_port}",
        )
        self.agent = subprocess.Popen(
            [sys.executable, __file__, "--agent", str(self.agent_port), str(self.health_port)],
            stdout=subprocess.PIPE,
        )
        if self.agent.stdout is None or self.agent.stdout.readline() != b"ready\n":
            sys.exit("agent did not start")
        edits: dict[str, Callable[[str], str] | None] = {
            "healthz": None,
            "greeting-short": _greeting_check("1s", "500ms", 2, "1s"),
            "greeting-before": _greeting_check("2s", "2s", 3, "5s"),
            "agent": _with_agent(self.agent_port),
        }
        self.haproxies: dict[str, Haproxy] = {}
        for name, edit in edits.items():
            (workdir / name).mkdir()
            self.haproxies[name] = Haproxy(workdir / name, [self.port], self.health_port, edit)
        self.sink = Sink(self.ctx, self.haproxies["healthz"].url, subscribers, SIZE)
        self.subscribers = subscribers
        deadline = time.monotonic() + 180
        while int(gateway_metrics(self.metrics)["subscribers"]) != subscribers:
            if time.monotonic() > deadline:
                sys.exit("subscribers did not all connect")
            time.sleep(0.5)
        self._join()

    def _send(self, sequence: int) -> None:
        header = struct.pack("=q", sequence)
        self.publisher.send_multipart([TOPIC, header + b"x" * (SIZE - len(TOPIC) - len(header))])

    def _join(self) -> None:
        for _ in range(120):
            before = self.sink.deliveries()
            self._send(-1)
            time.sleep(1)
            if self.sink.deliveries() - before == self.subscribers:
                return
        sys.exit("subscribers never all joined")

    def _server(self, name: str) -> dict[str, str]:
        return self.haproxies[name].stat(f"127.0.0.1:{self.port}")

    def _checks(self) -> dict[str, tuple[int, int]]:
        rows = {name: self._server(name) for name in self.haproxies}
        return {name: (int(row["chkfail"] or 0), int(row["chkdown"] or 0)) for name, row in rows.items()}

    def load(self, rate: float, seconds: float) -> dict[str, Any]:
        """Publish at `rate` for `seconds`: fan-out achieved, check round trips, failed checks, DOWNs."""
        checks_before = self._checks()
        probes = {
            "greeting": GreetingProbe(self.port),
            "healthz": GreetingProbe(self.health_port, measure=healthz_seconds),
        }
        before, start = self.sink.deliveries(), time.monotonic()
        for index in range(round(rate * seconds)):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._send(index)
        elapsed = time.monotonic() - start
        delivered = self.sink.deliveries() - before
        timings = {name: probe.stop() for name, probe in probes.items()}
        checks = self._checks()
        return {
            "deliveries_per_s": delivered / elapsed,
            "offered_per_s": rate * self.subscribers,
            "check_round_trip_ms": {
                name: {"p50": statistics.median(values) * 1000, "max": values[-1] * 1000, "n": len(values)}
                for name, values in timings.items()
            },
            "failed_checks": {name: checks[name][0] - checks_before[name][0] for name in checks},
            "marked_down": {name: checks[name][1] - checks_before[name][1] for name in checks},
        }

    def freeze(self, give_up: float) -> dict[str, dict[str, float | None]]:
        """SIGSTOP the gateway and its agent; seconds until each haproxy's first failed check and DOWN."""
        fails = {name: row[0] for name, row in self._checks().items()}
        seen: dict[str, dict[str, float | None]] = {
            name: {"first_failed_check_s": None, "down_s": None} for name in self.haproxies
        }
        start = time.monotonic()
        os.kill(self.gateway.pid, signal.SIGSTOP)
        os.kill(self.agent.pid, signal.SIGSTOP)
        try:
            while time.monotonic() - start < give_up and any(s["down_s"] is None for s in seen.values()):
                now = time.monotonic() - start
                for name in self.haproxies:
                    row = self._server(name)
                    if seen[name]["first_failed_check_s"] is None and int(row["chkfail"] or 0) > fails[name]:
                        seen[name]["first_failed_check_s"] = round(now, 2)
                    if seen[name]["down_s"] is None and row["status"] == "DOWN":
                        seen[name]["down_s"] = round(now, 2)
                time.sleep(0.05)
        finally:
            os.kill(self.gateway.pid, signal.SIGCONT)
            os.kill(self.agent.pid, signal.SIGCONT)
        return seen

    def close(self) -> None:
        self.gateway.kill()
        self.gateway.wait()
        self.agent.kill()
        self.agent.wait()
        self.sink.close()
        for haproxy in self.haproxies.values():
            haproxy.stop()
        self.ctx.destroy(linger=0)


def run_round(io_threads: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="failover-") as workdir:
        chain = Round(Path(workdir), io_threads, args.subscribers)
        try:
            result = {"io_threads": io_threads, "load": chain.load(args.rate, args.seconds)}
            result["freeze"] = chain.freeze(args.give_up)
        finally:
            chain.close()
    load = result["load"]
    trips = load["check_round_trip_ms"]
    print(
        f"io_threads {io_threads}: {load['deliveries_per_s']:,.0f} deliveries/s"
        f" (offered {load['offered_per_s']:,.0f})"
        f" | greeting ms p50/max {trips['greeting']['p50']:.0f}/{trips['greeting']['max']:.0f}"
        f" | /healthz ms p50/max {trips['healthz']['p50']:.1f}/{trips['healthz']['max']:.1f}"
    )
    for name, frozen in result["freeze"].items():
        print(
            f"  {name:16} under load: {load['failed_checks'][name]} failed checks,"
            f" {load['marked_down'][name]} DOWN"
            f" | frozen: first failed check {frozen['first_failed_check_s']} s, DOWN {frozen['down_s']} s"
        )
    return result


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per io_threads value."""
    out: dict[str, Any] = {}
    for threads in sorted({r["io_threads"] for r in rounds}):
        mine = [r for r in rounds if r["io_threads"] == threads]

        def median(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return statistics.median(known) if known else None

        out[f"io_threads={threads}"] = {
            "rounds": len(mine),
            "deliveries_per_s": median([r["load"]["deliveries_per_s"] for r in mine]),
            "greeting_ms_p50": median([r["load"]["check_round_trip_ms"]["greeting"]["p50"] for r in mine]),
            "greeting_ms_max": max(r["load"]["check_round_trip_ms"]["greeting"]["max"] for r in mine),
            "healthz_ms_p50": median([r["load"]["check_round_trip_ms"]["healthz"]["p50"] for r in mine]),
            "healthz_ms_max": max(r["load"]["check_round_trip_ms"]["healthz"]["max"] for r in mine),
            "candidates": {
                name: {
                    "failed_checks_under_load": sum(r["load"]["failed_checks"][name] for r in mine),
                    "marked_down_under_load": sum(r["load"]["marked_down"][name] for r in mine),
                    "frozen_down_s_median": median([r["freeze"][name]["down_s"] for r in mine]),
                    "frozen_down_s_each": [r["freeze"][name]["down_s"] for r in mine],
                }
                for name in mine[0]["freeze"]
            },
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=100, help="msg/s of 3 KB during the load")
    parser.add_argument("--seconds", type=float, default=20, help="load before the freeze")
    parser.add_argument("--io-threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2, help="rounds per io_threads value, alternating")
    parser.add_argument("--give-up", type=float, default=40, help="seconds to wait for every DOWN")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--agent", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent:
        agent(*args.agent)
        return
    raise_nofile()
    environment = f"python {sys.version.split()[0]}, pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}"
    load = f"{args.subscribers} subscribers, {args.rate:g} msg/s x {SIZE} B"
    print(f"{environment}, {os.cpu_count()} CPUs; {load}")
    rounds = [run_round(threads, args) for _ in range(args.repeat) for threads in args.io_threads]
    result = {
        "environment": environment,
        "arguments": vars(args),
        "rounds": rounds,
        "summary": summary(rounds),
    }
    print(json.dumps(result["summary"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
