#!/usr/bin/env python3
"""What stalled subscribers cost the gateway: resident memory per message queued for them.

A subscriber that connects and never reads makes the gateway queue up to send_hwm messages for it
(ZMQ_SNDHWM is per subscriber). This starts the daemon (metrics off), attaches SUBSCRIBERS such
subscribers, publishes MESSAGES ~3 KB messages and reads the daemon's VmRSS before and after.

  python bench/stalled.py [--messages 50000] [--subscribers 1]
"""

from __future__ import annotations

import argparse
import sys
import time

import zmq
from benchlib import free_port, rss_kib, start_gateway

SIZE = 3000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--subscribers", type=int, default=1)
    args = parser.parse_args()
    ctx = zmq.Context()
    source = ctx.socket(zmq.XPUB)
    source.setsockopt(zmq.SNDHWM, 0)
    source_url = f"tcp://127.0.0.1:{source.bind_to_random_port('tcp://127.0.0.1')}"
    public = f"tcp://127.0.0.1:{free_port()}"
    daemon = start_gateway([source_url], [public])
    source.recv()  # the gateway's subscription: from now on nothing sent is lost upstream
    for _ in range(args.subscribers):
        stalled = ctx.socket(zmq.SUB)
        stalled.setsockopt(zmq.RCVHWM, 1)
        stalled.setsockopt(zmq.RCVBUF, 4096)
        stalled.setsockopt(zmq.SUBSCRIBE, b"")
        stalled.connect(public)
    time.sleep(1)
    before = rss_kib(daemon.pid)
    frames = [b"org.fedoraproject.prod.bench", b"x" * (SIZE - 28)]
    for _ in range(args.messages):
        source.send_multipart(frames)
    time.sleep(3)
    after = rss_kib(daemon.pid)
    daemon.terminate()
    daemon.wait(10)
    ctx.destroy(linger=0)
    per_message = (after - before) * 1024 / args.messages
    print(f"python {sys.version.split()[0]}, libzmq {zmq.zmq_version()}: {args.messages} x {SIZE} B", end=" ")
    print(f"to {args.subscribers} stalled subscriber(s): RSS {before} -> {after} KiB,", end=" ")
    print(f"{per_message:,.0f} B per queued message;")
    print(f"at send_hwm 160000 that is ~{per_message * 160000 / 2**20:,.0f} MiB for them all")


if __name__ == "__main__":
    main()
