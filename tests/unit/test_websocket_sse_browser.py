"""GET /stream in a real browser: headless Chromium's own EventSource, cut off while the daemon restarts on
the same window and messages pass, reconnects by itself with the Last-Event-ID it kept and gets every
message exactly once, in order (the ones it missed from the window, then live ones)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import zmq
from gateway_harness import TIMEOUT
from kit import browser
from websocket_harness import WebsocketDaemon, bus_message, missed_while_restarting, publish

GIT = "org.fedoraproject.prod.git.receive"
#: What the page's EventSource received: [lastEventId, topic, body.i] per event, and its opens.
LISTEN = """
window.received = []; window.opens = 0;
const source = window.source = new EventSource('/stream');
source.onopen = () => { window.opens += 1; };
source.onmessage = (event) => {
  const message = JSON.parse(event.data);
  window.received.push([event.lastEventId, message.topic, message.body.i]);
};
"""
GIT_SEEN = f"window.received.filter(r => r[1] === '{GIT}').length"


@pytest.mark.skipif(not browser.CHROMIUM_INSTALLED, reason="needs Debian's chromium (./dev installs it)")
def test_chromium_eventsource_resumes_by_itself_with_none_missed_and_none_twice(
    start_windowed: Callable[..., tuple[zmq.Socket, WebsocketDaemon]],
    start_websocket: Callable[..., WebsocketDaemon],
) -> None:
    pub, daemon = start_windowed()
    # /healthz: a page of the daemon's own origin that opens nothing by itself (the live page would).
    with browser.start(daemon.http + "/healthz") as page:
        page.evaluate(LISTEN)
        page.wait_for("window.opens === 1", TIMEOUT)
        daemon.wait_metrics(lambda s: s["sse_clients"] == 1)
        publish(pub, [bus_message(i) for i in range(5)])
        page.wait_for(f"{GIT_SEEN} === 5", TIMEOUT)
        # Offline: the browser cannot reconnect while the daemon restarts on its window and 5 messages pass.
        gone = "window.source.readyState === EventSource.CONNECTING"
        missed = [bus_message(i) for i in range(5, 10)]
        restarted, probes = missed_while_restarting(
            page, gone, pub=pub, daemon=daemon, start=start_websocket, missed=missed
        )
        restarted.wait_metrics(lambda s: s["window_messages"] == 5 + probes + 5)  # the first 5 kept
        # EventSource's own retry (3 s by default in Chromium), with the last id it saw.
        page.wait_for(f"{GIT_SEEN} === 10", TIMEOUT * 2)
        restarted.wait_metrics(lambda s: s["sse_clients"] == 1)
        publish(pub, [bus_message(i) for i in range(10, 15)])
        page.wait_for(f"{GIT_SEEN} === 15", TIMEOUT)
        time.sleep(0.3)  # anything else on its way would show now
        received = page.evaluate("window.received")
        opens = page.evaluate("window.opens")
    assert [i for _, topic, i in received if topic == GIT] == list(range(15))
    cursors = [int(cursor) for cursor, _, _ in received]
    assert cursors == sorted(set(cursors)), "a message twice, or out of order"
    assert opens == 2
    samples = restarted.scrape()
    # The 5 it missed (and the probes) came from the window, through the Last-Event-ID it sent.
    assert (samples["resumes_total"], samples["resume_messages_total"]) == (1, probes + 5)
