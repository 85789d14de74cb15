"""The live page in a real browser: headless Chromium loads it from the daemon, subscribes through its own
box, its DOM shows the messages published after it loaded (and only the matching ones), and it comes back
by itself after the daemon restarts.

FEDMSG_PAGE_SCREENSHOT=PATH also saves the page as a PNG (how docs/websocket-page.png is made).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq
from gateway_harness import TIMEOUT, bus_publisher, wait_subscribed
from kit import browser
from websocket_harness import WebsocketDaemon, missed_while_restarting, publish

StartWebsocket = Callable[..., WebsocketDaemon]
PREFIX = "org.fedoraproject.prod.git"
TOPICS_SHOWN = "[...document.querySelectorAll('#messages .topic')].map(e => e.textContent)"
USERS = ["alice", "bob", "carol", "dave"]
PACKAGES = ["python-websockets", "zeromq", "haproxy", "chromium", "ansible-core"]


def git_message(index: int) -> tuple[str, bytes]:
    package = PACKAGES[index // 2 % len(PACKAGES)]
    body = {
        "i": index,
        "timestamp": 1764640000 + index,
        "username": USERS[index // 2 % len(USERS)],
        "msg": {
            "commit": {"repo": package, "branch": "rawhide", "summary": f"Update {package} to 1.{index}"}
        },
        "topic": f"{PREFIX}.receive",
    }
    body["msg"]["summary"] = body["msg"]["commit"]["summary"]
    return f"{PREFIX}.receive", json.dumps(body).encode()


def bodhi_message(index: int) -> tuple[str, bytes]:
    body = {"i": index, "msg": {"update": {"title": f"zeromq-4.3.{index}"}}}
    return "org.fedoraproject.prod.bodhi.update.comment", json.dumps(body).encode()


@pytest.mark.skipif(not browser.CHROMIUM_INSTALLED, reason="needs Debian's chromium (./dev installs it)")
def test_page_shows_live_messages_in_chromium(
    ctx: zmq.Context, start_websocket: StartWebsocket, tmp_path: Path
) -> None:
    pub, url = bus_publisher(ctx)
    daemon = start_websocket([url])
    wait_subscribed(pub)
    with browser.start(daemon.http + "/", window=(1100, 700)) as page:
        page.wait_for("document.getElementById('status')?.textContent.startsWith('connected')", TIMEOUT)
        page.type_into("#prefix", f"{PREFIX}*")
        page.click("#subscribe button[type=submit]")
        # Warm up until the new subscription is in, then clear the list.
        deadline = time.monotonic() + TIMEOUT
        while not page.evaluate(f"{TOPICS_SHOWN}.includes('{PREFIX}.warmup')"):
            assert time.monotonic() < deadline, "the page's subscription never took effect"
            publish(pub, [(f"{PREFIX}.warmup", b"{}")])
            time.sleep(0.1)
        time.sleep(0.3)
        page.evaluate("document.getElementById('messages').replaceChildren()")
        publish(pub, [git_message(i) if i % 2 else bodhi_message(i) for i in range(24)])
        page.wait_for(f"{TOPICS_SHOWN}.length >= 12", TIMEOUT)
        time.sleep(0.3)  # anything else on its way would show now
        topics = page.evaluate(TOPICS_SHOWN)
        summary = page.evaluate("document.querySelector('#messages .summary').textContent")
        # Open the newest message's JSON, as a reader would, for the screenshot.
        page.evaluate("document.querySelector('#messages details').open = true")
        png = page.screenshot(tmp_path / "page.png").read_bytes()

        # A restart: the page notices, backs off, reconnects to the new daemon on the same address and
        # subscribes again with what its box says.
        daemon.stop()
        # (No wait for its bus subscription: the loop below publishes until the page shows a message.)
        restarted = start_websocket([url], "--bind", f"127.0.0.1:{daemon.port}", "--metrics", "")
        page.wait_for("document.getElementById('status').textContent.startsWith('disconnected')", TIMEOUT)
        deadline = time.monotonic() + TIMEOUT * 3
        while not page.evaluate(f"{TOPICS_SHOWN}.includes('{PREFIX}.after-restart')"):
            assert time.monotonic() < deadline, f"the page never came back: {restarted.stderr}"
            publish(pub, [(f"{PREFIX}.after-restart", b"{}"), ("org.other.after-restart", b"{}")])
            time.sleep(0.2)
        others = page.evaluate(f"{TOPICS_SHOWN}.filter(t => t.startsWith('org.other')).length")
    assert others == 0
    assert topics == [f"{PREFIX}.receive"] * 12
    assert summary == "dave: Update zeromq to 1.23"  # the newest first: user and summary
    assert png.startswith(b"\x89PNG")
    target = os.environ.get("FEDMSG_PAGE_SCREENSHOT")
    if target:
        Path(target).write_bytes(png)


SHOWN_INDEXES = (
    "[...document.querySelectorAll('#messages li')]"
    ".filter(li => li.querySelector('.topic').textContent === 'org.fedoraproject.prod.git.receive')"
    ".map(li => JSON.parse(li.querySelector('pre').textContent).i).reverse()"
)


@pytest.mark.skipif(not browser.CHROMIUM_INSTALLED, reason="needs Debian's chromium (./dev installs it)")
def test_page_resumes_what_it_missed_while_disconnected(
    start_windowed: Callable[..., tuple[zmq.Socket, WebsocketDaemon]], start_websocket: StartWebsocket
) -> None:
    pub, daemon = start_windowed()
    with browser.start(daemon.http + "/") as page:
        page.wait_for("document.getElementById('status')?.textContent.startsWith('connected')", TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while not page.evaluate("document.querySelectorAll('#messages li').length"):
            assert time.monotonic() < deadline, "the page's subscription never took effect"
            publish(pub, [("warmup", b"{}")])
            time.sleep(0.1)
        publish(pub, [git_message(i) for i in range(5)])
        page.wait_for(f"{SHOWN_INDEXES}.length === 5", TIMEOUT)
        # The browser goes offline: it cannot reconnect while the daemon restarts and 5 messages pass.
        restarted, probes = missed_while_restarting(
            page,
            "document.getElementById('status').textContent.startsWith('disconnected')",
            pub=pub,
            daemon=daemon,
            start=start_websocket,
            missed=[git_message(i) for i in range(5, 10)],
        )
        page.wait_for(f"{SHOWN_INDEXES}.length === 10", TIMEOUT * 3)
        publish(pub, [git_message(10)])
        page.wait_for(f"{SHOWN_INDEXES}.length === 11", TIMEOUT)
        time.sleep(0.3)  # anything else on its way would show now
        shown = page.evaluate(SHOWN_INDEXES)
    assert shown == list(range(11))
    samples = restarted.scrape()
    # The 5 it missed (and the probes) came from the window, through the page's resume frame.
    assert (samples["resumes_total"], samples["resume_messages_total"]) == (1, probes + 5)
