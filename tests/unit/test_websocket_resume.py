"""The WebSocket resume frame against a real daemon: the backlog from the window, then live, with no gap and
no duplicate, also for messages published while the backlog is sent and for a client that was already
receiving live messages when it asked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
import zmq
from gateway_harness import bus_publisher, wait_subscribed
from websocket_harness import (
    WARMUP,
    WebsocketDaemon,
    bus_message,
    connect,
    frame_for,
    join,
    nothing_more,
    publish,
    receive,
    receive_counting_warmups,
    receive_cursors,
    subscribe,
)

StartWebsocket = Callable[..., WebsocketDaemon]
Bus = tuple[zmq.Socket, WebsocketDaemon]
GIT = "org.fedoraproject.prod.git"
BODHI = "org.fedoraproject.prod.bodhi"


def resume_frame(**body: object) -> str:
    return json.dumps({"topic": "__resume__", "body": body})


def padded(index: int) -> tuple[str, bytes]:
    body = json.dumps({"i": index, "msg_id": f"m-{index}", "timestamp": 1_700_000_000, "pad": "x" * 3000})
    return f"{GIT}.receive", body.encode()


@pytest.fixture
def bus(
    start_windowed: Callable[..., tuple[zmq.Socket, WebsocketDaemon]],
) -> tuple[zmq.Socket, WebsocketDaemon]:
    return start_windowed()


def test_resume_with_messages_published_while_the_backlog_is_sent(
    bus: tuple[zmq.Socket, WebsocketDaemon],
) -> None:
    pub, daemon = bus
    before = [padded(i) for i in range(3000)]
    during = [padded(i) for i in range(3000, 3500)]
    after = [padded(i) for i in range(3500, 3600)]

    async def scenario() -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
        async with connect(daemon) as first:
            await subscribe(first, "*")
            await join(pub, first)
            publish(pub, before)
            seen = await receive_cursors(first, len(before))
        await asyncio.to_thread(daemon.wait_metrics, lambda s: s["window_messages"] >= len(before))
        # The client holds one frame at a time and reads nothing until the test says so: the daemon is
        # still sending the ~9 MB backlog when `during` is published.
        async with connect(daemon, max_queue=1) as client:
            await subscribe(client, "*")
            await join(pub, client)  # it gets these warm-ups live: they are not replayed
            await client.send(resume_frame(cursor=str(seen[99][1])))
            await asyncio.to_thread(daemon.wait_metrics, lambda s: s["resuming"] == 1)
            publish(pub, during)
            await asyncio.to_thread(
                daemon.wait_metrics, lambda s: s["messages_received_total"] >= len(before) + len(during)
            )
            assert (await asyncio.to_thread(daemon.scrape))["resuming"] == 1, "resume ended too early"
            got, warmups = await receive_counting_warmups(client, len(before) - 100 + len(during))
            publish(pub, after)
            got += await receive_cursors(client, len(after))
            assert await nothing_more(client)
        return seen, got, warmups

    seen, got, warmups = asyncio.run(scenario())
    assert [frame for frame, _ in got] == [frame_for(*m) for m in before[100:] + during + after]
    cursors = [cursor for _, cursor in got]
    assert cursors == sorted(set(cursors))
    assert cursors[: len(before) - 100] == [cursor for _, cursor in seen[100:]]
    samples = daemon.wait_metrics(lambda s: s["clients"] == 0)
    # Replayed: the 2900 it missed, and the warm-ups published before its subscription took effect (it
    # did not get those live either).
    assert (samples["resumes_total"], samples["resume_messages_total"]) == (1, len(before) - 100 + warmups)
    assert samples["resuming"] == 0


def test_resume_skips_what_the_client_already_got_live(bus: tuple[zmq.Socket, WebsocketDaemon]) -> None:
    """Subscribed to git, then bodhi: the backlog has everything before each subscription, nothing after."""
    pub, daemon = bus
    a = [bus_message(i, f"{(GIT, BODHI)[i % 2]}.a") for i in range(10)]
    b = [bus_message(i, f"{(GIT, BODHI)[i % 2]}.b") for i in range(10, 20)]
    c = [bus_message(i, f"{(GIT, BODHI)[i % 2]}.c") for i in range(20, 30)]
    d = [bus_message(i, f"{(GIT, BODHI)[i % 2]}.d") for i in range(30, 40)]

    async def scenario() -> tuple[list[str], list[str], list[str], list[str]]:
        publish(pub, a)
        await asyncio.to_thread(daemon.wait_metrics, lambda s: s["window_messages"] >= len(a))
        async with connect(daemon) as client:
            await subscribe(client, GIT, WARMUP)
            await join(pub, client)
            publish(pub, b)
            live_b = await receive(client, 5)
            await subscribe(client, BODHI)
            await join(pub, client)
            publish(pub, c)
            live_c = await receive(client, 10)
            await client.send(resume_frame(since=0))
            backlog = await receive(client, 15)
            publish(pub, d)
            live_d = await receive(client, 10)
            assert await nothing_more(client)
            # A second resume frame on the same connection is ignored (and counted).
            await client.send(resume_frame(since=0))
            assert await nothing_more(client)
        return live_b, live_c, backlog, live_d

    live_b, live_c, backlog, live_d = asyncio.run(scenario())
    assert live_b == [frame_for(*m) for m in b if m[0].startswith(GIT)]
    assert live_c == [frame_for(*m) for m in c]
    assert backlog == [frame_for(*m) for m in a + [m for m in b if m[0].startswith(BODHI)]]
    assert live_d == [frame_for(*m) for m in d]
    assert daemon.wait_metrics(lambda s: s["client_frames_ignored_total"] == 1)


@pytest.mark.parametrize(
    "frame",
    [
        resume_frame(cursor="abc"),
        resume_frame(cursor=12),
        resume_frame(since="yesterday"),
        resume_frame(since=True),
        resume_frame(),
        json.dumps({"topic": "__resume__", "body": "0"}),
    ],
)
def test_bad_resume_frames_are_ignored(bus: tuple[zmq.Socket, WebsocketDaemon], frame: str) -> None:
    pub, daemon = bus
    publish(pub, [bus_message(1)])
    daemon.wait_metrics(lambda s: s["window_messages"] == 1)

    async def scenario() -> bool:
        async with connect(daemon) as client:
            await subscribe(client, "*")
            await client.send(frame)
            return await nothing_more(client)

    assert asyncio.run(scenario())
    samples = daemon.wait_metrics(lambda s: s["client_frames_ignored_total"] == 1)
    assert samples["resumes_total"] == 0


def test_resume_without_a_window_goes_live(ctx: zmq.Context, start_websocket: StartWebsocket) -> None:
    pub, url = bus_publisher(ctx)
    daemon = start_websocket([url])
    wait_subscribed(pub)

    async def scenario() -> list[str]:
        async with connect(daemon) as client:
            await subscribe(client, "*")
            await client.send(resume_frame(since=0))
            await asyncio.to_thread(daemon.wait_metrics, lambda s: s["resumes_total"] == 1)
            await join(pub, client)
            publish(pub, [bus_message(7)])
            return await receive(client, 1)

    assert asyncio.run(scenario()) == [frame_for(*bus_message(7))]
