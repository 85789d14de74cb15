"""Catch-up through the proxy's TLS front (https://proxy01:9939): /raw, event-stream resume, the window.

Messages are published on app01 by molecule/shared/files/fedmsg-catchup-probe on an endpoint both of
busgateway01's daemons subscribe to (tcp://app01:3001, bound only while a probe runs), each run on a
topic of its own, numbered ("i") so that a gap or a duplicate shows. Clients verify proxy01's
certificate against the run's test CA. The /raw flood comes last: it leaves the controller's address
over its rate for a few seconds.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fedmsg.consumers
import pytest
import requests
import testinfra
from fedmsg.consumers import FedmsgConsumer
from kit.raw import every_page
from testinfra.host import Host

testinfra_hosts = ["podman://app01"]

PROXY = "https://proxy01:9939"
CAFILE = "/usr/local/share/fedmsg-molecule-ca.crt"
PROBE = "fedmsg-catchup-probe"
#: The /raw flood: threads at once from the controller's address, requests each.
FLOODERS = 12
FLOOD_REQUESTS = 10
PUBLISH = "--bind tcp://*:3001 --subscribers 2"  # busgateway01's fedmsg-gateway and fedmsg-websocket
EPHEMERAL_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))


def run_topic(what: str) -> str:
    return f"org.fedoraproject.molecule.catchup.{what}.{uuid.uuid4().hex[:8]}"


def probe(host: Host, command: str) -> Any:  # noqa: ANN401 (the probe's JSON: a list or an object)
    return json.loads(host.check_output(f"{PROBE} {command}"))


def raw(host: Host, query: str) -> tuple[int, str]:
    answer = probe(host, f"get --url '{PROXY}/raw?{query}' --cafile {CAFILE}")
    return answer["status"], answer["body"]


def raw_topic(host: Host, topic: str) -> list[dict]:
    """Every message on TOPIC in the last hour, oldest first, every page of 100."""
    now = int(time.time())
    query = f"topic={topic}&start={now - 3600}&end={now + 60}&order=asc&rows_per_page=100"

    def fetch(page: int) -> dict[str, Any]:
        status, body = raw(host, f"{query}&page={page}")
        assert status == 200, body
        return json.loads(body)

    return every_page(fetch)


def wait_in_window(host: Host, topic: str, count: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(messages := raw_topic(host, topic)) < count:
        assert time.monotonic() < deadline, f"{len(messages)} of {count} messages in the window"
        time.sleep(0.3)
    return messages


@pytest.fixture(scope="module")
def proxy_address() -> str:
    address = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    return subprocess.run(
        ["podman", "inspect", "--format", address, "proxy01"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def proxy01_resolves(monkeypatch: pytest.MonkeyPatch, proxy_address: str) -> None:
    """proxy01 resolves on the controller as in the containers (TLS still checks the name proxy01)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list:
        return real(proxy_address if host == "proxy01" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(EPHEMERAL_DIR / "tls" / "ca.crt"))


def test_a_fedmsg_consumer_fetches_what_it_missed_through_the_proxy(
    host: Host, proxy01_resolves: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The consumer side is the fedmsg library's own code (fedmsg 1.1.7 in the test venv): its backlog
    # (FedmsgConsumer._backlog -> get_datagrepper_results) as a hub runs it after a restart.

    topic = run_topic("consumer")
    # The last message the consumer saw, then 250 it missed: 3 pages of 100 and more (the demo
    # heartbeats of the same seconds are on the pages too; the consumer's topic filter drops them).
    published = probe(host, f"publish {PUBLISH} --topic {topic} --count 251")
    window = wait_in_window(host, topic, 251)
    last = next(body for body in window if body["msg_id"] == published[0]["msg_id"])

    class Consumer(FedmsgConsumer):
        pass

    consumer = Consumer.__new__(Consumer)  # no hub: only the backlog code runs
    consumer.topic = [topic + "*"]
    consumer.datagrepper_url = f"{PROXY}/raw"
    consumer.skip_last_message = False
    consumer.log = logging.getLogger("fedmsg-consumer")
    consumer.incoming = queue.Queue()
    pages: list[int] = []
    real_get = fedmsg.consumers.requests.get

    def get(url: str, params: dict[str, Any]) -> requests.Response:
        pages.append(params["page"])
        return real_get(url, params=params)

    monkeypatch.setattr(fedmsg.consumers.requests, "get", get)
    # A hub restarts after its last message's second is over (end=now is whole seconds too).
    time.sleep(1.1)
    consumer._backlog(json.dumps({"message": {"topic": topic, "body": last}}))

    delivered = []
    while not consumer.incoming.empty():
        delivered.append(consumer.incoming.get_nowait()["body"])
    assert [body["msg_id"] for body in delivered] == [sent["msg_id"] for sent in published[1:]]
    assert [body["i"] for body in delivered] == list(range(2, 252))
    # Unchanged bodies: an int timestamp stays an int (signatures cover it).
    assert all(isinstance(body["timestamp"], int) for body in delivered)
    # Page 1 for the count, then every page: 251 messages of 100 a page are at least 3.
    assert pages[0] == 1, pages
    assert pages[1:] == list(range(1, len(pages))), pages
    assert len(pages) >= 4, pages


@pytest.mark.parametrize(
    ("command", "url"),
    [("sse-resume", f"{PROXY}/stream"), ("ws-resume", "wss://proxy01:9939/")],
    ids=["event-stream", "websocket"],
)
def test_a_client_cut_while_messages_flow_resumes_with_none_missed_or_twice(
    host: Host, command: str, url: str
) -> None:
    topic = run_topic(command)
    # 400 messages at 200/s; the client hangs up after 50 and is away for a second (~200 published
    # meanwhile), then resumes while messages still flow (the cut-over race): an event stream with
    # Last-Event-ID, a WebSocket with the resume frame and the last frame's id.
    report = probe(
        host,
        f"{command} {PUBLISH} --topic {topic} --count 400 --rate 200 --cut-after 50 --away 1"
        f" --url {url} --cafile {CAFILE}",
    )
    assert report["cut_at"] == 50, report
    assert report.get("statuses", [200, 200]) == [200, 200], report
    received = report["received"]
    assert received == list(range(1, 401)), (len(received), sorted(set(range(1, 401)) - set(received))[:10])


def test_the_window_outlives_a_restart_of_the_daemon(host: Host) -> None:
    gateway = testinfra.get_host("podman://busgateway01")
    topic = run_topic("restart")
    published = probe(host, f"publish {PUBLISH} --topic {topic} --count 20")
    wait_in_window(host, topic, 20)
    pid = gateway.check_output("systemctl show --property MainPID --value fedmsg-websocket")
    gateway.check_output("systemctl restart fedmsg-websocket")
    assert gateway.check_output("systemctl show --property MainPID --value fedmsg-websocket") != pid
    # Back in haproxy's rotation (503 until its health checks pass), then the same 20 messages.
    deadline = time.monotonic() + 30
    query = f"topic={topic}&start={int(time.time()) - 600}&end={int(time.time()) + 60}&order=asc"
    while (answer := raw(host, query))[0] != 200:
        assert answer[0] == 503, answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.5)
    after = json.loads(answer[1])["raw_messages"]
    assert [body["msg_id"] for body in after] == [sent["msg_id"] for sent in published]


@pytest.mark.parametrize(
    "query",
    [
        "start=abc&end=1",
        "start=1&end=2&rows_per_page=0",
        "start=1&end=2&rows_per_page=101",
        "start=1&end=2&page=0",
        "start=1&end=2&order=sideways",
        "start=10&end=1",
        "start=nan&end=inf",
        "start=1&end=2&page=99999999",
        "delta=172800",
        "category=git&start=1",
    ],
)
def test_bad_raw_requests_get_400_and_a_one_line_reason(host: Host, query: str) -> None:
    status, body = raw(host, query)
    assert status == 400, (query, status, body[:200])
    assert body.strip(), query
    assert "\n" not in body.strip(), body[:300]
    assert "Traceback" not in body, body[:300]


def test_a_huge_range_is_answered_one_bounded_page_at_a_time(host: Host) -> None:
    for query in ("start=0&end=99999999999", "start=0&end=99999999999&rows_per_page=100&page=1000000"):
        began = time.monotonic()
        status, body = raw(host, query)
        assert status == 200, body[:300]
        answer = json.loads(body)
        assert answer["count"] <= 100
        assert answer["total"] >= answer["count"]
        assert time.monotonic() - began < 5


def test_a_raw_flood_gets_429_and_the_live_stream_goes_on(host: Host, proxy_address: str) -> None:
    context = ssl.create_default_context(cafile=str(EPHEMERAL_DIR / "tls" / "ca.crt"))
    statuses: list[int] = []

    def flood() -> None:
        for _ in range(FLOOD_REQUESTS):
            client = http.client.HTTPSConnection(proxy_address, 9939, context=context, timeout=10)
            client.request("GET", f"/raw?start={int(time.time()) - 60}&end={int(time.time())}")
            statuses.append(client.getresponse().status)
            client.close()

    topic = run_topic("flood")
    # In parallel from one address: past the /raw requests it may have in flight, 429.
    flooding = [threading.Thread(target=flood) for _ in range(FLOODERS)]
    for thread in flooding:
        thread.start()
    # Meanwhile an event stream on app01 (another address) reads 200 messages at 100/s, uncut.
    report = probe(
        host,
        f"sse-resume {PUBLISH} --topic {topic} --count 200 --rate 100 --cut-after 200 --away 0"
        f" --url {PROXY}/stream --cafile {CAFILE}",
    )
    for thread in flooding:
        thread.join()
    assert report["received"] == list(range(1, 201)), report
    assert set(statuses) == {200, 429}, statuses
