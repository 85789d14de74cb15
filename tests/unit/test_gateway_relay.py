"""Relaying over real loopback sockets: integrity, order, filtering, reconnects, one-way."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import zmq
from gateway_harness import (
    Gateway,
    bus_publisher,
    free_port,
    join,
    receive,
    relayed,
    scrape,
    subscriber,
    wait_metrics,
    wait_subscribed,
)

StartGateway = Callable[..., Gateway]


def _batch(publisher: int, count: int) -> list[list[bytes]]:
    # Random bodies of varying size: the relay must not touch a byte nor the frame boundaries.
    return [
        [f"org.fedoraproject.test.p{publisher}".encode(), f"{i:06d}".encode() + os.urandom(i % 700)]
        for i in range(count)
    ]


def test_several_publishers_arrive_intact_and_in_order(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    publishers = [bus_publisher(ctx) for _ in range(3)]
    gateway = start_gateway([url for _, url in publishers])
    for pub, _ in publishers:
        wait_subscribed(pub)
    sub = subscriber(ctx, gateway.url)
    for pub, _ in publishers:
        join(pub, sub)
    batches = [_batch(n, 1000) for n in range(3)]
    for i in range(1000):
        for (pub, _), batch in zip(publishers, batches, strict=True):
            pub.send_multipart(batch[i])

    received = receive(sub, 3000)

    for n, batch in enumerate(batches):
        assert [m for m in received if m[0] == batch[0][0]] == batch, f"publisher {n}"


def test_topic_prefix_filter(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    pub, url = bus_publisher(ctx)
    gateway = start_gateway([url])
    wait_subscribed(pub)
    prefix = b"org.fedoraproject.prod.git."
    sub = subscriber(ctx, gateway.url, prefix)
    join(pub, sub, prefix + b"warmup")
    topics = [b"org.fedoraproject.prod.git.receive", b"org.fedoraproject.prod.bodhi.update", b"org.fedora"]
    sent = [[topics[i % 3], str(i).encode()] for i in range(300)]
    for message in sent:
        pub.send_multipart(message)
    pub.send_multipart([prefix + b"end", b""])

    received = receive(sub, 101, skip=prefix + b"warmup")

    assert received == [m for m in sent if m[0].startswith(prefix)] + [[prefix + b"end", b""]]


def test_restarted_publisher_is_picked_up_again(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    pub, url = bus_publisher(ctx)
    gateway = start_gateway([url])
    wait_subscribed(pub)
    sub = subscriber(ctx, gateway.url)
    join(pub, sub)
    pub.send_multipart([b"before", b"1"])
    assert receive(sub, 1) == [[b"before", b"1"]]

    pub.close(linger=0)
    pub, _ = bus_publisher(ctx, int(url.rsplit(":", 1)[1]))
    wait_subscribed(pub)
    pub.send_multipart([b"after", b"2"])

    assert receive(sub, 1) == [[b"after", b"2"]]


def test_endpoint_down_at_start_is_connected_later(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    port = free_port()
    gateway = start_gateway([f"tcp://127.0.0.1:{port}"])
    time.sleep(0.3)  # let the first connection attempts fail
    pub, _ = bus_publisher(ctx, port)
    wait_subscribed(pub)
    sub = subscriber(ctx, gateway.url)
    join(pub, sub)
    pub.send_multipart([b"late", b"x"])

    assert receive(sub, 1) == [[b"late", b"x"]]


def test_unresolvable_endpoint_does_not_stop_the_rest(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    pub, url = bus_publisher(ctx)
    gateway = start_gateway(["tcp://bus.fedmsg-gateway-test.invalid:3999", url])
    wait_subscribed(pub)
    sub = subscriber(ctx, gateway.url)
    join(pub, sub)
    pub.send_multipart([b"still", b"relayed"])

    assert receive(sub, 1) == [[b"still", b"relayed"]]
    assert gateway.process.poll() is None


def test_nothing_from_the_public_side_reaches_the_bus(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    bus, url = bus_publisher(ctx)
    bus.setsockopt(zmq.XPUB_VERBOSE, 1)
    gateway = start_gateway([url])
    wait_subscribed(bus)
    honest = subscriber(ctx, gateway.url)
    join(bus, honest)
    # A client speaking XSUB may send subscriptions and data upstream; a PUB client tries to publish.
    xsub = ctx.socket(zmq.XSUB)
    xsub.setsockopt(zmq.LINGER, 0)
    xsub.connect(gateway.url)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(gateway.url)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        xsub.send(b"\x01org.fedoraproject.evil")
        xsub.send_multipart([b"org.fedoraproject.evil", b"forged"])
        pub.send_multipart([b"org.fedoraproject.evil", b"forged"])
        time.sleep(0.01)
    bus.send_multipart([b"end", b""])

    assert receive(honest, 1) == [[b"end", b""]]
    assert not honest.poll(200)
    # The bus side saw no data and no subscription but the gateway's own subscribe-to-everything.
    while bus.poll(200):
        assert bus.recv() == b"\x01"


def test_send_hwm_bounds_a_stalled_subscriber(start_gateway: StartGateway, ctx: zmq.Context) -> None:
    """--hwm takes effect: a subscriber that stops reading loses what exceeds it, the daemon goes on."""
    pub, url = bus_publisher(ctx)
    gateway = start_gateway([url], "--hwm", "10")
    wait_subscribed(pub)
    stalled = subscriber(ctx, gateway.url)
    stalled.setsockopt(zmq.RCVHWM, 1)
    join(pub, stalled)
    start = relayed(scrape(gateway))[1]
    body = b"x" * 100_000
    for _ in range(400):
        pub.send_multipart([b"big", body])
    # Once the proxy has handed all 400 to the public socket, whatever did not fit is gone.
    wait_metrics(gateway, lambda samples: relayed(samples)[1] >= start + 400)

    got = 0
    while stalled.poll(500):
        got += stalled.recv_multipart()[0] == b"big"
    assert 0 < got < 400
    assert gateway.process.poll() is None


def test_public_port_gets_the_configured_accept_queue(
    start_gateway: StartGateway, ctx: zmq.Context, tmp_path: Path
) -> None:
    """listen_backlog reaches the kernel: ss shows a listening socket's accept queue as Send-Q."""
    _, url = bus_publisher(ctx)
    config = tmp_path / "gateway.toml"
    config.write_text(f'endpoints = ["{url}"]\nlisten_backlog = 321\n')
    gateway = start_gateway([], "--config", str(config))
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{gateway.port}"], check=True, capture_output=True, text=True
    ).stdout.split()
    assert listening[0] == "LISTEN"
    assert int(listening[2]) == 321
