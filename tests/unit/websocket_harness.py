"""Test harness for fedmsg-websocket: the daemon as a subprocess, real WebSocket clients, a bus publisher.

The clients are the installed websockets library's own (`websockets.connect` is the legacy client on
10.4 and the new one on 13+; both have send/recv/close), so the tests run unchanged on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
import zmq
from gateway_harness import TIMEOUT, Daemon, free_port

from fedmsg_gateway.check import parse_metrics

WARMUP = "warmup"
# The cursor the daemon adds to each frame, after the moksha keys.
_CURSOR = re.compile(r', "id": "(\d+)"\}$')


class WebsocketDaemon(Daemon):
    """fedmsg-websocket with its own HTTP/WebSocket port and metrics port."""

    def __init__(self, tmp_path: Path, endpoints: list[str], *args: str, **env: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.http = f"http://127.0.0.1:{self.port}"
        command = ["--bind", f"127.0.0.1:{self.port}", "--metrics", f"127.0.0.1:{self.metrics_port}"]
        for endpoint in endpoints:
            command += ["--endpoint", endpoint]
        super().__init__(tmp_path, "fedmsg_websocket", [*command, *args], **env)

    def scrape(self) -> dict[str, float]:
        """The fedmsg_websocket_* metrics, names without the prefix."""
        address = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(address, timeout=TIMEOUT) as page:
            return parse_metrics(page.read().decode(), "fedmsg_websocket_")

    def wait_metrics(self, condition: Callable[[dict[str, float]], bool]) -> dict[str, float]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            samples = self.scrape()
            if condition(samples):
                return samples
            assert time.monotonic() < deadline, f"metrics never satisfied the condition: {samples}"
            time.sleep(0.05)


def http_get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a plain GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:  # noqa: S310 - the tests' own http://
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def connect(daemon: WebsocketDaemon, **options: Any) -> Any:  # noqa: ANN401 - the installed API's client
    return websockets.connect(daemon.url, open_timeout=TIMEOUT, **options)


async def subscribe(client: Any, *topics: str) -> None:  # noqa: ANN401
    for topic in topics:
        await client.send(json.dumps({"topic": "__topic_subscribe__", "body": topic}))


def split_cursor(frame: str) -> tuple[str, int]:
    """(the moksha frame without its trailing `"id"` key, the cursor); the id must be there."""
    match = _CURSOR.search(frame)
    assert match is not None, f"no cursor in {frame[-60:]!r}"
    return frame[: match.start()] + "}", int(match[1])


async def receive_counting_warmups(client: Any, count: int) -> tuple[list[tuple[str, int]], int]:  # noqa: ANN401
    """The next `count` frames that are not warm-ups, each split into (frame without id, cursor), and how
    many warm-ups came among them."""
    frames: list[tuple[str, int]] = []
    warmups = 0
    while len(frames) < count:
        frame = await asyncio.wait_for(client.recv(), TIMEOUT)
        if json.loads(frame)["topic"] == WARMUP:
            warmups += 1
        else:
            frames.append(split_cursor(frame))
    return frames, warmups


async def receive_cursors(client: Any, count: int) -> list[tuple[str, int]]:  # noqa: ANN401
    """The next `count` frames that are not warm-ups, each split into (frame without id, cursor)."""
    return (await receive_counting_warmups(client, count))[0]


async def receive(client: Any, count: int) -> list[str]:  # noqa: ANN401
    """The next `count` frames that are not warm-ups, without their cursor (compared with frame_for)."""
    return [frame for frame, _ in await receive_cursors(client, count)]


async def drain(client: Any) -> None:  # noqa: ANN401
    """Read until the connection closes (raises ConnectionClosed), each frame within TIMEOUT."""
    while True:
        await asyncio.wait_for(client.recv(), TIMEOUT)


async def nothing_more(client: Any, seconds: float = 0.3) -> bool:  # noqa: ANN401
    """True if no frame arrives within `seconds` (after a sentinel proved everything before it arrived)."""
    try:
        await asyncio.wait_for(client.recv(), seconds)
    except TimeoutError:
        return True
    return False


async def join(pub: zmq.Socket, *clients: Any) -> None:  # noqa: ANN401
    """Publish warm-ups until every client (subscribed to WARMUP) got one: its subscriptions are in."""
    for client in clients:
        deadline = time.monotonic() + TIMEOUT
        while True:
            pub.send_multipart([WARMUP.encode(), b"{}"])
            try:
                await asyncio.wait_for(client.recv(), 0.05)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    pytest.fail("client never received a warm-up message")
    # Let the warm-ups still in flight arrive, then drop them.
    for client in clients:
        while not await nothing_more(client, 0.2):
            pass


def publish(pub: zmq.Socket, messages: list[tuple[str, bytes]]) -> None:
    for topic, body in messages:
        pub.send_multipart([topic.encode(), body])


def bus_message(index: int, topic: str = "org.fedoraproject.prod.git.receive") -> tuple[str, bytes]:
    body = json.dumps({"i": index, "msg": {"agent": "alice", "title": f"commit {index}"}, "timestamp": 1.5})
    return topic, body.encode()


def fedmsg_backlog(datagrepper_url: str, topic: str, last_seen: dict[str, Any]) -> list[dict[str, Any]]:
    """What fedmsg's own FedmsgConsumer._backlog (with its get_datagrepper_results), unmodified, queues for a
    consumer of `topic` whose status file holds `last_seen`, pointed at `datagrepper_url`: as a hub runs it
    on start (in a thread: any exception, such as a 429's HTML that is no JSON, ends the catch-up there)."""
    consumers = pytest.importorskip("fedmsg.consumers")
    consumer = object.__new__(consumers.FedmsgConsumer)
    consumer.topic = topic
    consumer.datagrepper_url = datagrepper_url
    consumer.skip_last_message = False
    consumer.log = logging.getLogger("fedmsg-consumer-under-test")
    consumer.incoming = queue.Queue()
    consumer._backlog(json.dumps({"message": {"topic": last_seen["topic"], "body": last_seen}}))
    got = []
    while not consumer.incoming.empty():
        got.append(consumer.incoming.get_nowait())
    return got


def restart_on_its_window(
    pub: zmq.Socket, stopped: WebsocketDaemon, start: Callable[..., WebsocketDaemon]
) -> tuple[WebsocketDaemon, int]:
    """A daemon started with `start` on the stopped one's address, bus and --state-dir, once it hears the
    bus, and how many probes that took (topic "probe", body {}: they are in its window)."""
    args = stopped.process.args
    state, url = args[args.index("--state-dir") + 1], args[args.index("--endpoint") + 1]
    restarted = start([url], "--state-dir", state, "--bind", f"127.0.0.1:{stopped.port}")
    # (XPUB reports no repeated subscription: probe until the new daemon hears the bus.)
    deadline = time.monotonic() + TIMEOUT
    while not restarted.scrape()["messages_received_total"]:
        assert time.monotonic() < deadline, "the restarted daemon never heard the bus"
        publish(pub, [("probe", b"{}")])
        time.sleep(0.1)
    time.sleep(0.3)
    return restarted, int(restarted.scrape()["messages_received_total"])


def missed_while_restarting(
    page: Any,  # noqa: ANN401 - a kit.browser.Browser
    gone: str,
    *,
    pub: zmq.Socket,
    daemon: WebsocketDaemon,
    start: Callable[..., WebsocketDaemon],
    missed: list[tuple[str, bytes]],
) -> tuple[WebsocketDaemon, int]:
    """The browser goes offline (it cannot reconnect meanwhile), `daemon` stops, the page notices (the
    JavaScript condition `gone`), the daemon restarts on its window and `missed` are published and
    received; then the browser is back online. The restarted daemon and its probes (restart_on_its_window)."""
    page.set_offline(True)
    daemon.stop()
    page.wait_for(gone, TIMEOUT)
    restarted, probes = restart_on_its_window(pub, daemon, start)
    publish(pub, missed)
    samples = restarted.wait_metrics(lambda s: s["messages_received_total"] == probes + len(missed))
    assert samples["connections_total"] + samples["sse_connections_total"] == 0, "back before the messages"
    page.set_offline(False)
    return restarted, probes


def frame_for(topic: str, body: bytes) -> str:
    """What the daemon must send for a bus message: the body embedded as published."""
    return '{"topic": ' + json.dumps(topic) + ', "body": ' + body.decode() + "}"


class SseClient:
    """A Server-Sent Events client on a plain socket, so a test decides when it reads (and when it does
    not: a small receive buffer makes the daemon wait for it)."""

    def __init__(
        self,
        daemon: WebsocketDaemon,
        path: str,
        headers: dict[str, str] | None = None,
        receive_buffer: int = 0,
    ) -> None:
        self.sock = socket.socket()
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", daemon.port))
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{daemon.port}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buffer = b""
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {
            name.lower(): value.strip() for name, _, value in (h.partition(":") for h in head[1:])
        }

    def _until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError(f"closed before {marker!r}")
            self._buffer += chunk
        found, _, self._buffer = self._buffer.partition(marker)
        return found

    def body(self) -> bytes:
        """Everything until the daemon closes (for refusals)."""
        while chunk := self.sock.recv(65536):
            self._buffer += chunk
        return self._buffer

    def event(self) -> tuple[str | None, str, list[str]]:
        """The next block: (id or None, data joined with line feeds, comment lines)."""
        block = self._until(b"\n\n").decode()
        cursor, data, comments = None, [], []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("id: "):
                cursor = line[4:]
            elif line.startswith("data: "):
                data.append(line[6:])
        return cursor, "\n".join(data), comments

    def events(self, count: int) -> list[tuple[int, str]]:
        """The next `count` events as (cursor, data), skipping comments and warm-ups."""
        found: list[tuple[int, str]] = []
        while len(found) < count:
            cursor, data, _ = self.event()
            if cursor is not None and json.loads(data)["topic"] != WARMUP:
                found.append((int(cursor), data))
        return found

    def nothing_more(self, seconds: float = 0.3) -> bool:
        """True if no event (comments aside) arrives within `seconds`."""
        self.sock.settimeout(seconds)
        try:
            while True:
                cursor, _, _ = self.event()
                if cursor is not None:
                    return False
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(TIMEOUT)

    def closed(self) -> bool:
        """Read what is left: True once the daemon closed or reset the connection (within TIMEOUT)."""
        with contextlib.suppress(ConnectionResetError):
            self.body()
        return True

    def close(self) -> None:
        self.sock.close()
