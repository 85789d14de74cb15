#!/usr/bin/env python3
"""A gateway restart with thousands of subscribers behind haproxy: how long until they are all back.

When the daemon dies, the kernel resets its connections, haproxy closes those sessions and every
subscriber's libzmq reconnects at once; haproxy opens a new backend connection for each. Here:
SUBSCRIBERS connections through haproxy (the role's rendered configuration) to the real daemon, then
SIGKILL and a new daemon 1 s later (systemd's RestartSec), and the time until the daemon's own
subscriber gauge shows them all again, with how many sessions haproxy opened on the way.

Each listen backlog given is run in turn, on a fresh chain; 100 is libzmq's default (the baseline),
4096 the role's default.

  python bench/restart.py [--subscribers 9500] [--backlogs 100 4096] [--repeat 1] [--give-up 120]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import zmq
from benchlib import Haproxy, Sink, free_port, gateway_metrics, raise_nofile, start_gateway


def subscribers(metrics: str) -> int:
    try:
        return int(gateway_metrics(metrics)["subscribers"])
    except OSError:  # the daemon is not up yet
        return -1


def run(count: int, backlog: int, give_up: float) -> dict[str, float | None]:
    with tempfile.TemporaryDirectory(prefix="restart-") as workdir:
        ctx = zmq.Context()
        ctx.set(zmq.MAX_SOCKETS, 4096)
        bus = ctx.socket(zmq.PUB)
        bus_url = f"tcp://127.0.0.1:{bus.bind_to_random_port('tcp://127.0.0.1')}"
        port, metrics, health_port = free_port(), f"127.0.0.1:{free_port()}", free_port()
        config = Path(workdir) / "gateway.toml"
        config.write_text(f"listen_backlog = {backlog}\n")

        def gateway() -> subprocess.Popen[bytes]:
            return start_gateway(
                [bus_url],
                [f"tcp://127.0.0.1:{port}"],
                metrics,
                config=config,
                health=f"127.0.0.1:{health_port}",
            )

        daemon = gateway()
        haproxy = Haproxy(Path(workdir), [port], health_port)
        sink = Sink(ctx, haproxy.url, count, 1)
        try:
            deadline = time.monotonic() + 180
            while subscribers(metrics) != count:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {subscribers(metrics)} of {count} subscribers connected")
                time.sleep(0.5)
            opened = haproxy.churn()["sessions_opened"]
            daemon.kill()
            daemon.wait()
            time.sleep(1)  # systemd's RestartSec
            daemon = gateway()
            start = time.monotonic()
            half: float | None = None
            back: float | None = None
            while (now := time.monotonic() - start) < give_up:
                held = subscribers(metrics)
                if held >= count // 2 and half is None:
                    half = now
                if held == count:
                    back = now
                    break
                time.sleep(0.2)
            return {
                "backlog": backlog,
                "half_back_s": None if half is None else round(half, 1),
                "all_back_s": None if back is None else round(back, 1),
                "held_at_end": subscribers(metrics),
                "sessions_opened": haproxy.churn()["sessions_opened"] - opened,
            }
        finally:
            sink.close()
            haproxy.stop()
            daemon.kill()
            daemon.wait()
            ctx.destroy(linger=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=9500)
    parser.add_argument("--backlogs", type=int, nargs="+", default=[100, 4096])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--give-up", type=float, default=120, help="seconds to wait for all to be back")
    args = parser.parse_args()
    raise_nofile()
    print(f"{args.subscribers} subscribers through haproxy; gateway SIGKILLed, restarted 1 s later")
    for _ in range(args.repeat):
        for backlog in args.backlogs:
            result = run(args.subscribers, backlog, args.give_up)
            all_back = (
                f"all back after {result['all_back_s']} s"
                if result["all_back_s"] is not None
                else f"NOT all back within {args.give_up:g} s ({result['held_at_end']} held)"
            )
            print(
                f"  backlog {backlog:5}: half back after {result['half_back_s']} s, {all_back},"
                f" haproxy opened {result['sessions_opened']:,} sessions",
                flush=True,
            )


if __name__ == "__main__":
    main()
