"""The moksha livesocket protocol against a real daemon: subscriptions, prefixes, order, what is dropped."""

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
    drain,
    frame_for,
    join,
    nothing_more,
    publish,
    receive,
    subscribe,
)
from websockets.exceptions import ConnectionClosed

StartWebsocket = Callable[..., WebsocketDaemon]


@pytest.fixture
def bus(ctx: zmq.Context, start_websocket: StartWebsocket) -> tuple[zmq.Socket, WebsocketDaemon]:
    pub, url = bus_publisher(ctx)
    daemon = start_websocket([url])
    wait_subscribed(pub)
    return pub, daemon


def test_everything_in_order_bodies_as_published(bus: tuple[zmq.Socket, WebsocketDaemon]) -> None:
    pub, daemon = bus
    messages = [bus_message(i) for i in range(1000)]

    async def scenario() -> list[str]:
        async with connect(daemon) as client:
            await subscribe(client, "*")
            await join(pub, client)
            publish(pub, messages)
            return await receive(client, len(messages))

    frames = asyncio.run(scenario())
    assert frames == [frame_for(topic, body) for topic, body in messages]
    assert json.loads(frames[7]) == {"topic": messages[7][0], "body": json.loads(messages[7][1])}


def test_prefix_gets_exactly_the_matching_messages(bus: tuple[zmq.Socket, WebsocketDaemon]) -> None:
    pub, daemon = bus
    topics = [
        "org.fedoraproject.prod.git.receive",
        "org.fedoraproject.prod.bodhi.update",
        "org.fedoraproject",
    ]
    messages = [bus_message(i, topics[i % 3]) for i in range(300)]
    wanted = [message for message in messages if message[0].startswith("org.fedoraproject.prod.git")]

    async def scenario() -> tuple[list[str], bool]:
        async with connect(daemon) as client:
            await subscribe(client, "org.fedoraproject.prod.git*", WARMUP)
            await join(pub, client)
            publish(pub, [*messages, (WARMUP, b"{}")])
            frames = await receive(client, len(wanted))
            # The warm-up sent last proves nothing else was on its way.
            assert json.loads(await asyncio.wait_for(client.recv(), 10))["topic"] == WARMUP
            return frames, await nothing_more(client)

    frames, quiet = asyncio.run(scenario())
    assert frames == [frame_for(topic, body) for topic, body in wanted]
    assert quiet


def test_overlapping_subscriptions_deliver_once(bus: tuple[zmq.Socket, WebsocketDaemon]) -> None:
    pub, daemon = bus
    messages = [bus_message(i) for i in range(50)]

    async def scenario() -> tuple[list[str], bool]:
        async with connect(daemon) as client:
            # moksha sent each of these messages four times.
            await subscribe(client, "*", "org.*", "org.fedoraproject.prod.git", "org.fedoraproject.prod.git")
            await join(pub, client)
            publish(pub, messages)
            return await receive(client, len(messages)), await nothing_more(client)

    frames, quiet = asyncio.run(scenario())
    assert frames == [frame_for(topic, body) for topic, body in messages]
    assert quiet


def test_client_frames_other_than_subscriptions_reach_nobody(bus: tuple[zmq.Socket, WebsocketDaemon]) -> None:
    pub, daemon = bus
    forged = [
        "not json",
        b"\x00binary\xff",
        json.dumps({"topic": "org.fedoraproject.prod.git.receive", "body": {"forged": True}}),
        json.dumps({"topic": "__topic_unsubscribe__", "body": "*"}),
        json.dumps({"topic": "__topic_subscribe__", "body": {"not": "a string"}}),
        json.dumps(["__topic_subscribe__", "*"]),
    ]
    messages = [bus_message(i) for i in range(20)]

    async def scenario() -> tuple[list[str], list[str], bool, bool]:
        async with connect(daemon) as attacker, connect(daemon) as listener:
            await subscribe(attacker, WARMUP)
            await subscribe(listener, "*")
            await join(pub, attacker, listener)
            for frame in forged:
                await attacker.send(frame)
            await subscribe(attacker, "org.fedoraproject.prod.git")  # still served after all that
            await join(pub, attacker)
            publish(pub, messages)
            heard = await receive(listener, len(messages))
            got = await receive(attacker, len(messages))
            return heard, got, await nothing_more(listener), await nothing_more(attacker)

    heard, got, listener_quiet, attacker_quiet = asyncio.run(scenario())
    expected = [frame_for(topic, body) for topic, body in messages]
    assert heard == expected
    assert got == expected
    assert listener_quiet
    assert attacker_quiet
    assert daemon.wait_metrics(lambda s: s["client_frames_ignored_total"] == len(forged))
    # Nothing but the daemon's own subscription ever reached the bus.
    assert not pub.poll(200)


def test_bus_messages_that_are_not_json_are_skipped_and_counted(
    bus: tuple[zmq.Socket, WebsocketDaemon],
) -> None:
    pub, daemon = bus
    topic = "org.fedoraproject.prod.git.receive"
    junk = [
        [topic.encode(), b"not json"],
        [topic.encode(), b"NaN"],
        [topic.encode(), b'{"a": 1'],
        [topic.encode(), b"\xff\xfe"],
        [b"\xff", b"{}"],
        [topic.encode(), b"{}", b"third frame"],
    ]
    good = bus_message(1)

    async def scenario() -> tuple[list[str], bool]:
        async with connect(daemon) as client:
            await subscribe(client, "*")
            await join(pub, client)
            before = daemon.scrape()
            for frames in junk:
                pub.send_multipart(frames)
            publish(pub, [good])
            frames = await receive(client, 1)
            samples = daemon.wait_metrics(
                lambda s: s["messages_received_total"] - before["messages_received_total"] == len(junk) + 1
            )
            assert samples["messages_skipped_total"] == len(junk)
            return frames, await nothing_more(client)

    frames, quiet = asyncio.run(scenario())
    assert frames == [frame_for(*good)]
    assert quiet


def test_oversized_frame_closes_only_that_client(bus: tuple[zmq.Socket, WebsocketDaemon]) -> None:
    pub, daemon = bus

    async def scenario() -> tuple[int | None, list[str]]:
        async with connect(daemon) as big, connect(daemon) as other:
            await subscribe(big, "*")
            await subscribe(other, "*")
            await join(pub, big, other)
            await big.send("x" * 5000)  # the default limit is 4096 bytes
            with pytest.raises(ConnectionClosed):
                await drain(big)
            publish(pub, [bus_message(1)])
            return big.close_code, await receive(other, 1)

    code, frames = asyncio.run(scenario())
    assert code == 1009
    assert frames == [frame_for(*bus_message(1))]
    assert daemon.wait_metrics(lambda s: s["oversized_client_closes_total"] == 1)
