"""The browser stream end to end: wss://proxy01:9939 (TLS ends in haproxy) -> fedmsg-websocket.

Clients on app01 verify proxy01's certificate against the test CA made at prepare time
(molecule/shared/files/make-test-ca) and speak moksha's livesocket protocol
(molecule/shared/files/fedmsg-websocket-probe); a real headless Chromium on the controller loads the
live page through the same proxy and subscribes through the page's own box.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import testinfra
from kit import browser
from kit.bundle import WEBSOCKET_METRICS_PORT
from kit.hosts import metrics_page
from testinfra.host import Host

testinfra_hosts = ["podman://app01"]

URL = "wss://proxy01:9939/"
CAFILE = "/usr/local/share/fedmsg-molecule-ca.crt"
PROBE = "fedmsg-websocket-probe"
PUBLISH = "tcp://*:3001"  # a bus endpoint the daemon subscribes to, bound only while a probe runs
EPHEMERAL_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
TLS_DIR = EPHEMERAL_DIR / "tls"
SLOW_CLOSES = re.compile(r"^fedmsg_websocket_slow_client_closes_total (\d+)", re.MULTILINE)


def probe(host: Host, command: str, *args: str) -> dict:
    output = host.check_output(f"{PROBE} {command} --url {URL} --cafile {CAFILE} {' '.join(args)}")
    return json.loads(output)


def slow_closes() -> int:
    page = metrics_page(testinfra.get_host("podman://busgateway01"), WEBSOCKET_METRICS_PORT)
    match = SLOW_CLOSES.search(page)
    assert match, "fedmsg-websocket exports no slow_client_closes_total"
    return int(match[1])


def test_every_message_reaches_the_websocket_clients_in_order(host: Host) -> None:
    report = probe(host, "check", "--publish", PUBLISH, "--count", "1000")
    assert report["all"]["expected"] == 1000
    for name in ("all", "prefix"):
        result = report[name]
        assert (result["received"], result["identical"], result["in_order"]) == (
            result["expected"],
            True,
            True,
        ), (
            name,
            result,
        )
    assert 0 < report["prefix"]["expected"] < 1000
    # Garbage, binary, forged and malformed frames from one client reached nobody, itself included,
    # and cost it nothing.
    assert (report["abuser_effects"], report["abuser_received"], report["abuser_open"]) == (0, 0, True)


def test_a_slow_client_is_closed_while_a_fast_one_receives_everything(host: Host) -> None:
    before = slow_closes()
    # 12 MB: far past the scenario's max_queue_bytes and what haproxy and the kernels buffer.
    report = probe(host, "slow", "--publish", PUBLISH, "--count", "4000", "--size", "3000")
    fast = report["fast"]
    assert (fast["received"], fast["in_order"], report["fast_open"]) == (fast["expected"], True, True), report
    assert report["slow_closed"], report
    # The daemon closed it for being slow (through haproxy the close frame may be cut off by a reset).
    assert slow_closes() == before + 1


def test_the_page_and_the_health_check_answer_through_the_proxy(host: Host) -> None:
    script = (
        "import ssl, sys, urllib.request as u\n"
        "context = ssl.create_default_context(cafile=sys.argv[1])\n"
        "for path in ('/', '/healthz'):\n"
        "    with u.urlopen('https://proxy01:9939' + path, context=context, timeout=10) as page:\n"
        "        print(path, page.status, page.headers.get_content_type())\n"
    )
    lines = host.check_output("python3 -c %s %s", script, CAFILE).splitlines()
    assert lines[0] == "/ 200 text/html"
    assert lines[1].startswith("/healthz 200")


def test_plain_http_on_the_tls_port_is_refused_cleanly(host: Host) -> None:
    script = (
        "import socket\n"
        "s = socket.create_connection(('proxy01', 9939), timeout=5)\n"
        "s.sendall(b'GET / HTTP/1.1\\r\\nHost: proxy01\\r\\n\\r\\n')\n"
        "answer = b''\n"
        "while chunk := s.recv(4096): answer += chunk\n"
        "print(answer[:5].hex())\n"
    )
    # Closed at once, with at most a TLS alert (record type 0x15), never an HTTP answer or a hang.
    answer = bytes.fromhex(host.check_output("python3 -c %s", script).strip())
    assert not answer.startswith(b"HTTP/")
    assert answer in (b"",) or answer[:1] == b"\x15", answer


def test_a_real_browser_shows_live_messages_on_the_page(tmp_path: Path) -> None:
    proxy_ip = subprocess.run(
        [
            "podman",
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "proxy01",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pin = browser.spki_pin(TLS_DIR / "server.crt")
    with browser.start(
        "https://proxy01:9939/",
        host_resolver_rules=f"MAP proxy01 {proxy_ip}",
        spki_pin=pin,
        screenshot_dir=tmp_path,
    ) as page:
        page.wait_for("document.querySelector('#status').textContent.startsWith('connected')")
        page.type_into("#prefix", "org.fedoraproject.dev.demo*")
        page.click("#subscribe button")
        # The demo publisher sends a heartbeat every 0.5 s: these arrive after the page loaded.
        page.wait_for("document.querySelectorAll('#messages li').length >= 3")
        topics = page.evaluate("[...document.querySelectorAll('#messages li')].map(li => li.textContent)")
        page.screenshot(EPHEMERAL_DIR / "websocket-page.png")
    assert all("org.fedoraproject.dev.demo.heartbeat" in text for text in topics), topics
