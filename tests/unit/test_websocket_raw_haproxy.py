"""A fedmsg hub catching up a long backlog through haproxy as roles/haproxy renders it (TLS, the per-source
/raw limit, its defaults) in front of a real fedmsg-websocket: fedmsg's own backlog code, one page after
the other as fast as they come, gets every message and is never refused; a parallel flood from the same
address is refused with 429 (under .venv: the fedmsg library)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Before the imports below: Debian's python3 pass has neither fedmsg nor Ansible (the role's template).
pytest.importorskip("fedmsg.consumers")
pytest.importorskip("ansible")

import zmq
from kit.haproxy_role import RoleHaproxy
from test_websocket_raw import BASE, GIT, fedmsg_body
from websocket_harness import WebsocketDaemon, fedmsg_backlog, publish

#: The backlog: 35 pages of fedmsg's 100 rows.
MESSAGES = 3500
FLOODERS = 24


@pytest.fixture
def proxied(
    start_windowed: Callable[..., tuple[zmq.Socket, WebsocketDaemon]], tmp_path: Path
) -> Iterator[tuple[zmq.Socket, WebsocketDaemon, RoleHaproxy]]:
    """A daemon with a window, behind haproxy (the role's template and defaults) on a loopback address."""
    pub, daemon = start_windowed()
    workdir = tmp_path / "haproxy"
    workdir.mkdir()
    proxy = RoleHaproxy(workdir, "127.0.0.1", ["127.0.0.1"], daemon.port)
    try:
        proxy.wait_servers_up(1)
        yield pub, daemon, proxy
    finally:
        proxy.stop()


def raw_status(proxy: RoleHaproxy, query: str) -> int:
    client = http.client.HTTPSConnection(proxy.host, proxy.port, context=proxy.context(), timeout=30)
    try:
        client.request("GET", f"/raw?{query}")
        response = client.getresponse()
        response.read()
        return response.status
    finally:
        client.close()


def test_fedmsg_backlog_through_haproxy_is_never_refused_and_a_flood_is(
    proxied: tuple[zmq.Socket, WebsocketDaemon, RoleHaproxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    pub, daemon, proxy = proxied
    messages = [(GIT, fedmsg_body(index, GIT, BASE + index // 10)) for index in range(MESSAGES)]
    publish(pub, messages)
    daemon.wait_metrics(lambda s: s["window_messages"] == len(messages))
    last_seen = json.loads(messages[0][1])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", proxy.cafile)  # requests trusts the test CA, and only it

    began = time.monotonic()
    got = fedmsg_backlog(f"https://{proxy.host}:{proxy.port}/raw", "org.fedoraproject.prod.git.*", last_seen)
    seconds = time.monotonic() - began
    assert [item["body"] for item in got] == [json.loads(body) for _, body in messages[1:]]
    requests = daemon.scrape()["raw_requests_total"]
    assert requests == MESSAGES // 100 + 1  # its 35 pages once, the first twice, all through haproxy
    print(f"fedmsg backlog: {requests:.0f} requests in {seconds:.2f} s, {requests / seconds:.0f}/s")

    # The same address, FLOODERS requests at once: past the requests in flight a source may have, 429.
    start = threading.Barrier(FLOODERS)
    statuses: list[int] = []

    def flood() -> None:
        start.wait()
        statuses.append(raw_status(proxy, f"start={BASE}&end={BASE + 1000}&rows_per_page=100&page=2"))

    flooders = [threading.Thread(target=flood) for _ in range(FLOODERS)]
    for thread in flooders:
        thread.start()
    for thread in flooders:
        thread.join()
    assert set(statuses) == {200, 429}, statuses
    # The refused ones never reached the daemon.
    assert daemon.scrape()["raw_requests_total"] == requests + statuses.count(200)
