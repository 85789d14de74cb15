"""The browser stream's listen (fedmsg-websockets) as roles/haproxy renders it, in a real haproxy.

Two stand-in gateways answer what fedmsg-websocket answers over plain HTTP (/healthz, /raw, an event
stream on /stream); clients come from loopback addresses of their own, so "per source" is exact.
What is checked is what the clients see: 429 past the /raw requests a source may have in flight (and
never for one request after the other, however fast) and past the streams a source may hold, other
sources unaffected; an event stream governed by `timeout tunnel` (not by the client and
server timeouts); /raw requests spread over both gateways.
"""

from __future__ import annotations

import http.client
import http.server
import shutil
import socketserver
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from haproxy_chain import private_loopback
from kit.haproxy_role import RoleHaproxy, free_port

RAW_PER_SOURCE = 3
#: Released once by each /raw?hold request at a gateway; set to let them finish.
HELD = threading.Semaphore(0)
RELEASE = threading.Event()
STREAMS_PER_SOURCE = 2
# Client and server inactivity (the defaults section) shorter than the gap between events, the
# tunnel longer: an event stream that survives is the tunnel timeout's doing.
INACTIVITY = "1s"
TUNNEL_S = 3


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Gateway

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/stream":
            self._stream(urllib.parse.parse_qs(url.query))
            return
        if url.path == "/raw" and "hold" in url.query:
            self._hold()
            return
        body = {"/healthz": b"ok\n", "/raw": self.server.name.encode()}.get(url.path, b"not found\n")
        self.send_response(200 if url.path in ("/healthz", "/raw") else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hold(self) -> None:
        """A slow /raw answer, in flight until the test sets RELEASE: a byte every 0.2 s meanwhile (within
        the server timeout)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        HELD.release()
        while not RELEASE.wait(0.2):
            self.wfile.write(b".")
            self.wfile.flush()
        self.wfile.write(self.server.name.encode())

    def _stream(self, query: dict[str, list[str]]) -> None:
        """Events every `every` s; after `count` of them silence, held until the client goes."""
        every = float(query.get("every", ["0.2"])[0])
        count = int(query.get("count", ["1000000"])[0])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for number in range(count):
                self.wfile.write(f"id: {number}\ndata: {self.server.name}\n\n".encode())
                self.wfile.flush()
                time.sleep(every)
            while self.rfile.read(1):
                pass
        except OSError:
            pass


class _Gateway(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients and haproxy's checks that hang up: expected here

    def __init__(self, address: str, port: int) -> None:
        super().__init__((address, port), _Handler)
        self.name = address
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def proxy() -> Iterator[RoleHaproxy]:
    workdir = Path(tempfile.mkdtemp(prefix="hap-ws-"))
    gateways = [private_loopback(), private_loopback()]
    port = free_port(gateways[0])
    servers = [_Gateway(address, port) for address in gateways]
    haproxy = RoleHaproxy(
        workdir,
        private_loopback(),
        gateways,
        port,
        haproxy_websocket_max_raw_per_source=RAW_PER_SOURCE,
        haproxy_websocket_max_streams_per_source=STREAMS_PER_SOURCE,
        haproxy_websocket_max_conn_per_source=50,
        haproxy_fedmsg_timeout_client=INACTIVITY,
        haproxy_fedmsg_timeout_server=INACTIVITY,
        haproxy_websocket_timeout_tunnel=f"{TUNNEL_S}s",
    )
    try:
        haproxy.wait_servers_up(2)
        yield haproxy
    finally:
        haproxy.stop()
        for server in servers:
            server.shutdown()
            server.server_close()
        shutil.rmtree(workdir)


def connect(proxy: RoleHaproxy, source: str) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(
        proxy.host, proxy.port, context=proxy.context(), timeout=10, source_address=(source, 0)
    )


def get(proxy: RoleHaproxy, source: str, path: str) -> tuple[int, bytes]:
    connection = connect(proxy, source)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class EventStream:
    """GET /stream through the proxy, read event by event."""

    def __init__(self, proxy: RoleHaproxy, source: str, query: str = "") -> None:
        self.connection = connect(proxy, source)
        self.connection.request("GET", "/stream" + query)
        self.response = self.connection.getresponse()
        self.status = self.response.status

    def next_event(self) -> str | None:
        """The next event's data line; None when the stream ended."""
        data = None
        while line := self.response.fp.readline():
            if line.startswith(b"data: "):
                data = line[6:].decode().strip()
            elif line == b"\n" and data is not None:
                return data
        return None

    def close(self) -> None:
        self.connection.close()


def test_raw_one_after_the_other_is_never_refused(proxy: RoleHaproxy) -> None:
    pager = private_loopback()
    # What fedmsg's backlog code does: a new connection per page, the next as soon as one is answered
    # (~200 a second here: a rate limit that let a flood through would stop it).
    statuses = [get(proxy, pager, f"/raw?page={n}")[0] for n in range(400)]
    assert statuses == [200] * 400


def test_raw_past_the_requests_in_flight_is_429_for_that_source_only(proxy: RoleHaproxy) -> None:
    flooder, other = private_loopback(), private_loopback()
    held: list[tuple[int, bytes]] = []
    holders = [
        threading.Thread(target=lambda: held.append(get(proxy, flooder, "/raw?hold")))
        for _ in range(RAW_PER_SOURCE)
    ]
    for holder in holders:
        holder.start()
    try:
        # Until all of them are at a gateway (in flight: haproxy counts them).
        for _ in range(RAW_PER_SOURCE):
            assert HELD.acquire(timeout=10)
        assert get(proxy, flooder, "/raw?page=2")[0] == 429
        # The trailing slash form datagrepper also answers is counted alike.
        assert get(proxy, flooder, "/raw/")[0] == 429
        # Others are not held back, nor are the flooder's other requests (the page, health).
        assert get(proxy, other, "/raw")[0] == 200
        assert get(proxy, flooder, "/healthz")[0] == 200
    finally:
        RELEASE.set()
        for holder in holders:
            holder.join()
        RELEASE.clear()
    assert [status for status, body in held] == [200] * RAW_PER_SOURCE, held
    # Allowed again as soon as they are answered.
    assert get(proxy, flooder, "/raw")[0] == 200


def test_a_source_holds_at_most_its_streams(proxy: RoleHaproxy) -> None:
    listener, other = private_loopback(), private_loopback()
    streams = [EventStream(proxy, listener) for _ in range(STREAMS_PER_SOURCE)]
    try:
        assert [stream.status for stream in streams] == [200] * STREAMS_PER_SOURCE
        assert all(stream.next_event() for stream in streams)
        refused = EventStream(proxy, listener)
        assert refused.status == 429
        refused.close()
        # /raw from the same source and streams from another are not counted against it.
        assert get(proxy, listener, "/raw")[0] == 200
        elsewhere = EventStream(proxy, other)
        assert elsewhere.status == 200
        elsewhere.close()
        # A closed stream frees its place (haproxy sees it at the gateway's next event).
        streams.pop().close()
        deadline = time.monotonic() + 5
        while (again := EventStream(proxy, listener)).status != 200:
            again.close()
            assert time.monotonic() < deadline, "a closed stream still counted after 5 s"
            time.sleep(0.2)
        streams.append(again)
        assert again.next_event()
    finally:
        for stream in streams:
            stream.close()


def test_an_event_stream_lives_by_the_tunnel_timeout(proxy: RoleHaproxy) -> None:
    # Events 1.5 s apart: past the 1 s client and server timeouts, within the 3 s tunnel.
    stream = EventStream(proxy, private_loopback(), "?every=1.5&count=3")
    try:
        assert stream.status == 200
        events = [stream.next_event() for _ in range(3)]
        assert None not in events, events
        last = time.monotonic()
        # Then silence (the gateway sends nothing, the client waits): cut by the tunnel timeout.
        assert stream.next_event() is None
        silent = time.monotonic() - last
        assert TUNNEL_S - 0.5 < silent < TUNNEL_S + 2, silent
    finally:
        stream.close()


def test_raw_requests_spread_over_the_gateways(proxy: RoleHaproxy) -> None:
    sources = [private_loopback() for _ in range(4)]
    answered = {get(proxy, sources[n % 4], "/raw")[1] for n in range(8)}
    assert len(answered) == 2, answered
