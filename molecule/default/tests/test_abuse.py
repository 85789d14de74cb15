"""Abuse of the public port, the short version run by `./dev test` (molecule/faults has the long one).

From app01, through proxy01:9940: garbage, an HTTP request, a handshake that stops half-way, and
messages pushed into the public port by a PUB and by an XSUB. An established subscriber must
receive every message meanwhile, nothing pushed in may reach any subscriber, and the gateway must
keep running (the flood past maxconn is in test_monitoring.py).
"""

import json

from kit.hosts import main_pid
from kit.probes import Heartbeats
from testinfra.host import Host

testinfra_hosts = ["podman://app01"]

INJECTED = "org.fedoraproject.prod.INJECTED"
# Runs on app01. Prints what a subscriber to everything received while the abuse went on.
ABUSE = """
import json, os, socket, sys, time, zmq
host, port = "proxy01", 9940
context = zmq.Context()
witness = context.socket(zmq.SUB)
witness.setsockopt(zmq.SUBSCRIBE, b"")
witness.connect(f"tcp://{host}:{port}")
raw = [socket.create_connection((host, port)) for _ in range(3)]
raw[0].sendall(os.urandom(65536))
raw[1].sendall(b"GET / HTTP/1.1\\r\\nHost: hub.fedoraproject.org\\r\\n\\r\\n")
raw[2].sendall(b"\\xff" + b"\\x00" * 8)  # the start of a ZMTP greeting, then nothing
injectors = [context.socket(zmq.PUB), context.socket(zmq.XSUB)]
for sock in injectors:
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{host}:{port}")
time.sleep(1)
for _ in range(500):
    for sock in injectors:
        sock.send_multipart([sys.argv[1].encode(), b"{}"])
injectors[1].send(b"\\x02" + sys.argv[1].encode())
topics, deadline = [], time.monotonic() + 5
while time.monotonic() < deadline:
    if witness.poll(200):
        topics.append(witness.recv_multipart()[0].decode(errors="replace"))
print(json.dumps(topics))
"""


def test_abusive_clients_reach_nobody_and_harm_nobody(host: Host, heartbeats: Heartbeats) -> None:
    gateway = host.get_host("podman://busgateway01")
    pid = main_pid(gateway, "fedmsg-gateway")
    first = heartbeats.received()[-1]

    witnessed = json.loads(host.check_output("python3 -c %s %s", ABUSE, INJECTED))

    received = heartbeats.wait_for_more(3)
    after = [i for i in received if i >= first]
    assert after == list(range(first, first + len(after))), "the established subscriber lost messages"
    assert witnessed, "the witness received nothing: it proves nothing"
    assert INJECTED not in witnessed, "a message pushed into the public port reached a subscriber"
    assert main_pid(gateway, "fedmsg-gateway") == pid
