"""A client that stops reading is closed; one reading at full speed meanwhile gets every message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq
from gateway_harness import bus_publisher, wait_subscribed
from websocket_harness import WebsocketDaemon, connect, drain, frame_for, join, publish, receive, subscribe
from websockets.exceptions import ConnectionClosed

StartWebsocket = Callable[..., WebsocketDaemon]
MAX_QUEUE = 1024 * 1024
# Rounds of 32 messages of 16 KiB (512 KiB): a client that reads each round before the next never has more
# than MAX_QUEUE outstanding, even if the kernel buffered none of it. The one that reads nothing fills its
# kernel socket buffers (a few MiB on loopback) and then MAX_QUEUE within ~25 rounds.
ROUND = 32
MAX_ROUNDS = 100


def test_slow_client_is_closed_and_the_fast_one_gets_everything(
    ctx: zmq.Context, start_websocket: StartWebsocket, tmp_path: Path
) -> None:
    config = tmp_path / "websocket.toml"
    config.write_text(f"max_queue_bytes = {MAX_QUEUE}\n")
    pub, url = bus_publisher(ctx)
    daemon = start_websocket([url], "--config", str(config))
    wait_subscribed(pub)
    padding = "p" * 16384

    async def scenario() -> tuple[int, list[str], list[str]]:
        async with connect(daemon) as slow, connect(daemon) as fast:
            await subscribe(slow, "*")
            await subscribe(fast, "*")
            await join(pub, slow, fast)
            sent: list[tuple[str, bytes]] = []
            received: list[str] = []
            for _ in range(MAX_ROUNDS):
                batch = [
                    ("org.fedoraproject.prod.test", f'{{"i": {len(sent) + i}, "p": "{padding}"}}'.encode())
                    for i in range(ROUND)
                ]
                publish(pub, batch)
                sent += batch
                # The fast client reads everything as it comes; the slow one reads nothing.
                received += await receive(fast, ROUND)
                if (await asyncio.to_thread(daemon.scrape))["slow_client_closes_total"] >= 1:
                    break
            else:
                raise AssertionError(f"slow client never closed after {MAX_ROUNDS} rounds")
            with pytest.raises(ConnectionClosed):
                await drain(slow)
            return slow.close_code, received, [frame_for(topic, body) for topic, body in sent]

    code, received, expected = asyncio.run(scenario())
    assert received == expected
    # 1013 when the slow client reads its close frame within the close timeout, 1006 (no frame) if not.
    assert code in (1013, 1006)
    samples = daemon.scrape()
    assert samples["slow_client_closes_total"] == 1
    assert samples["clients"] == 0
    assert f"too slow: over {MAX_QUEUE} bytes queued" in daemon.stderr
