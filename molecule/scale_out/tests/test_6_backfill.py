"""Back-fill: a gateway's fedmsg-websocket stopped while messages flow answers /raw for that time, once
started again, exactly like the other gateway (it fetched what it missed from its peer's /raw).

Messages are numbered and published on app01 (molecule/shared/files/fedmsg-catchup-probe) on an endpoint
both gateways' daemons subscribe to; busgateway02's fedmsg-websocket is stopped for a few seconds in
the middle. Each gateway's /raw is asked on the gateway itself (127.0.0.1:9919), page by page.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import testinfra
from conftest import GATEWAYS
from kit.bundle import WEBSOCKET_METRICS_PORT
from kit.hosts import metrics_page
from kit.probes import Background
from kit.wait import wait_until
from testinfra.host import Host

testinfra_hosts = ["podman://app01"]

COUNT, RATE = 160, 20  # 8 s of messages
AWAY_S = 3
# On a gateway: every message /raw serves for [start, end] (optionally one topic), all pages, as JSON.
RAW_ALL = """
import json, sys, urllib.parse, urllib.request
start, end, topic = sys.argv[1:4]
page, pages, bodies = 1, 1, []
while page <= pages:
    query = {"start": start, "end": end, "order": "asc", "rows_per_page": 100, "page": page}
    if topic:
        query["topic"] = topic
    url = "http://127.0.0.1:9919/raw?" + urllib.parse.urlencode(query)
    answer = json.load(urllib.request.urlopen(url, timeout=10))
    pages = answer["pages"]
    bodies += answer["raw_messages"]
    page += 1
print(json.dumps(bodies))
"""
UNFILLED = re.compile(r"^fedmsg_websocket_window_unfilled_seconds (\S+)$", re.MULTILINE)


def gateway(name: str) -> Host:
    return testinfra.get_host(f"podman://{name}")


def raw_all(name: str, start: int, end: int, topic: str = "") -> list[dict]:
    return json.loads(
        gateway(name).check_output("python3 -c %s %s %s %s", RAW_ALL, str(start), str(end), topic)
    )


def window_held(name: str) -> list[list[float]]:
    """The time ranges a gateway's window holds (its GET /window, which peers' back-fill reads)."""
    page = gateway(name).check_output(
        "python3 -c %s",
        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9919/window').read().decode())",
    )
    return json.loads(page)["held"]


def gate_log(since: float) -> str:
    """What busgateway02's daemon logged about back-fill since SINCE (the gaps it could not fill)."""
    return gateway("busgateway02").check_output(
        "journalctl --quiet -u fedmsg-websocket -o cat --since @%s", str(int(since) - 1)
    )


def unfilled_seconds(name: str) -> float:
    match = UNFILLED.search(metrics_page(gateway(name), WEBSOCKET_METRICS_PORT))
    assert match, "fedmsg-websocket exports no window_unfilled_seconds"
    return float(match[1])


def test_a_restarted_gateway_answers_raw_for_its_downtime_like_the_other(background: Background) -> None:
    topic = f"org.fedoraproject.molecule.backfill.{uuid.uuid4().hex[:8]}"
    started = int(time.time())
    # Both gateways' fedmsg-gateway and fedmsg-websocket subscribe to app01:3001.
    background(
        "backfill-publisher",
        f"fedmsg-catchup-probe publish --bind tcp://*:3001 --subscribers 4 --topic {topic}"
        f" --count {COUNT} --rate {RATE}",
    )

    def held(name: str) -> int:
        return len(raw_all(name, started, started + 60, topic))

    wait_until(lambda: held("busgateway01") >= 20, "messages in busgateway01's window")
    unfilled_before = unfilled_seconds("busgateway02")
    late = gateway("busgateway02")
    late.check_output("systemctl stop fedmsg-websocket")
    stopped = time.time()
    time.sleep(AWAY_S)
    late.check_output("systemctl start fedmsg-websocket")
    back = time.time()
    wait_until(lambda: held("busgateway01") >= COUNT, "every message in busgateway01's window")
    # What busgateway02 did not receive while it was stopped, it back-fills from busgateway01.
    wait_until(lambda: held("busgateway02") >= COUNT, "busgateway02's back-fill", timeout=30, interval=0.5)

    reference = raw_all("busgateway01", started, started + 60, topic)
    assert sorted(body["i"] for body in reference) == list(range(1, COUNT + 1))
    reference.sort(key=lambda body: body["i"])
    missed = [body for body in reference if stopped < body["timestamp"] < back - 1]
    assert len(missed) >= RATE * (AWAY_S - 1), (
        f"only {len(missed)} messages were published while it was stopped"
    )
    # The same messages, bodies unchanged. (Within one whole second /raw's order is not defined: sorted.)
    again = raw_all("busgateway02", started, started + 60, topic)
    assert sorted(again, key=lambda body: body["i"]) == reference
    # The whole stretch, the demo heartbeats of those seconds too: the same answer from both gateways.
    stretch = (int(stopped) - 2, int(back) + 2)
    answers = {name: sorted(body["msg_id"] for body in raw_all(name, *stretch)) for name in GATEWAYS}
    assert answers["busgateway01"] == answers["busgateway02"], answers
    # Its window now holds all of that time: the stretch it was stopped is no gap any more.
    coverage = window_held("busgateway02")
    assert any(start <= stopped - 1 and back <= end for start, end in coverage), coverage
    # And the metric counts none of it. What it counted at the previous start is older time that no
    # gateway held (e.g. both daemons restarted at once); this start may fill some of that, adds none.
    assert unfilled_seconds("busgateway02") <= unfilled_before, gate_log(back)
