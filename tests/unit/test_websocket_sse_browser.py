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
from websocket_harness import WebsocketDaemon, bus_message, publish

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
    args = daemon.process.args
    state, url = args[args.index("--state-dir") + 1], args[args.index("--endpoint") + 1]
    # /healthz: a page of the daemon's own origin that opens nothing by itself (the live page would).
    with browser.start(daemon.http + "/healthz") as page:
        page.evaluate(LISTEN)
        page.wait_for("window.opens === 1", TIMEOUT)
        daemon.wait_metrics(lambda s: s["sse_clients"] == 1)
        publish(pub, [bus_message(i) for i in range(5)])
        page.wait_for(f"{GIT_SEEN} === 5", TIMEOUT)
        # Offline: the browser cannot reconnect while the daemon restarts on its window and 5 messages pass.
        page.call("Network.enable")
        conditions = {"latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        page.call("Network.emulateNetworkConditions", offline=True, **conditions)
        daemon.stop()
        page.wait_for("window.source.readyState === EventSource.CONNECTING", TIMEOUT)
        restarted = start_websocket([url], "--state-dir", state, "--bind", f"127.0.0.1:{daemon.port}")
        # (XPUB reports no repeated subscription: probe until the new daemon hears the bus.)
        deadline = time.monotonic() + TIMEOUT
        while not restarted.scrape()["messages_received_total"]:
            assert time.monotonic() < deadline, "the restarted daemon never heard the bus"
            publish(pub, [("probe", b'{"i": -1}')])
            time.sleep(0.1)
        time.sleep(0.3)
        probes = restarted.scrape()["messages_received_total"]
        publish(pub, [bus_message(i) for i in range(5, 10)])
        restarted.wait_metrics(lambda s: s["window_messages"] == 5 + probes + 5)  # the first 5 kept
        assert restarted.scrape()["sse_clients"] == 0, "the browser came back before the messages"
        page.call("Network.emulateNetworkConditions", offline=False, **conditions)
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
