"""fedmsg-websocket as a process: settings, HTTP routes, systemd notifications, signals."""

from __future__ import annotations

import base64
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import websockets
from gateway_harness import TIMEOUT, run_to_exit
from websocket_harness import WebsocketDaemon, http_get

from fedmsg_gateway.version import package_version
from fedmsg_websocket import health

StartWebsocket = Callable[..., WebsocketDaemon]
MODULE = "fedmsg_websocket"
ENDPOINT = "tcp://127.0.0.1:1"


def test_serves_the_page_and_its_assets(start_websocket: StartWebsocket) -> None:
    daemon = start_websocket([ENDPOINT])
    status, kind, body = http_get(daemon.http + "/")
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert b'<script src="page.js"' in body
    status, kind, body = http_get(daemon.http + "/page.js?v=1")
    assert (status, kind) == (200, "text/javascript; charset=utf-8")
    assert b"__topic_subscribe__" in body
    assert http_get(daemon.http + "/page.css")[:2] == (200, "text/css; charset=utf-8")


@pytest.mark.parametrize("path", ["/nope", "/healthz/x", "/index.html", "/static/page.js"])
def test_other_paths_are_404(start_websocket: StartWebsocket, path: str) -> None:
    daemon = start_websocket([ENDPOINT])
    assert http_get(daemon.http + path)[0] == 404


def test_healthz_answers_while_the_bus_reader_runs(start_websocket: StartWebsocket) -> None:
    # Even with no publisher up: the reader's heartbeat reaches the loop.
    daemon = start_websocket([ENDPOINT])
    time.sleep(1.5)  # past a heartbeat, so the answer is not only the start-up value
    assert http_get(daemon.http + "/healthz") == (200, "text/plain; charset=utf-8", b"ok\n")


@pytest.mark.parametrize(
    ("alive", "silence", "answer"),
    [
        (True, 0.0, None),
        (True, health.MAX_SILENCE, None),
        (True, health.MAX_SILENCE + 0.1, "no hand-off from the bus reader for 5.1 s"),
        (False, 0.0, "bus reader stopped"),
    ],
)
def test_health_needs_a_live_reader_and_recent_hand_offs(
    alive: bool, silence: float, answer: str | None
) -> None:
    # The daemon answers /healthz 503 with this line whenever it is not None.
    assert health.problem(alive, silence) == answer


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_0_quickly(start_websocket: StartWebsocket, signum: signal.Signals) -> None:
    daemon = start_websocket([ENDPOINT])
    started = time.monotonic()
    daemon.process.send_signal(signum)
    assert daemon.process.wait(TIMEOUT) == 0
    assert time.monotonic() - started < 2.0
    assert daemon.notify.wait_for("STOPPING=1", timeout=1.0)
    assert f"stopping on {signum.name}" in daemon.stderr


def test_version() -> None:
    result = run_to_exit(MODULE, "--version")
    assert (result.returncode, result.stdout) == (0, f"fedmsg-websocket {package_version()}\n")


def test_check_config_accepts_a_full_file(tmp_path: Path) -> None:
    config = tmp_path / "websocket.toml"
    config.write_text(
        f"""
endpoints = ["tcp://app01.example.org:3000", "ipc:///run/bus"]
bind = "*:9919"
metrics = "127.0.0.1:9929"
state_dir = "{tmp_path}"
max_queue_bytes = 1048576
max_frame_bytes = 1024
max_subscriptions = 10
ping_interval = 0
ping_timeout = 5
compression = "deflate"
listen_backlog = 128
receive_hwm = 0
tcp_keepalive = false
reconnect_interval_max_ms = 0
"""
    )
    result = run_to_exit(MODULE, "--config", str(config), "--check-config")
    assert (result.returncode, result.stderr) == (0, "")


BAD_SETTINGS = [
    ("", [], "endpoints"),
    ("", ["--endpoint", "http://x:1"], "endpoints"),
    ("", ["--bind", "nohost"], "bind"),
    ("", ["--bind", "127.0.0.1:70000"], "bind"),
    ("", ["--metrics", "9929"], "metrics"),
    ("", ["--state-dir", "/nonexistent/dir"], "state_dir"),
    ("bind = 9919\n", [], "bind"),
    ("max_queue_bytes = 100\n", [], "max_queue_bytes"),
    ("max_frame_bytes = true\n", [], "max_frame_bytes"),
    ("ping_timeout = 0\n", [], "ping_timeout"),
    ('compression = "zstd"\n', [], "compression"),
    ("reconnect_interval_ms = 500\nreconnect_interval_max_ms = 100\n", [], "reconnect_interval_max_ms"),
    ("colour = 1\n", [], "colour"),
    ("not toml [\n", [], "invalid TOML"),
]


@pytest.mark.parametrize(("text", "args", "key"), BAD_SETTINGS)
def test_bad_settings_exit_2_with_one_line_naming_the_key(
    tmp_path: Path, text: str, args: list[str], key: str
) -> None:
    config = tmp_path / "websocket.toml"
    config.write_text(
        text if "endpoints" in text or key == "endpoints" else f'endpoints = ["{ENDPOINT}"]\n{text}'
    )
    result = run_to_exit(MODULE, "--config", str(config), *args, "--check-config")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fedmsg-websocket: ")
    assert key in lines[0]


def test_works_without_a_config_file() -> None:
    result = run_to_exit(MODULE, "--endpoint", ENDPOINT, "--bind", "127.0.0.1:9919", "--check-config")
    assert (result.returncode, result.stderr) == (0, "")


def test_metrics_say_which_versions_run(start_websocket: StartWebsocket) -> None:
    samples = start_websocket([ENDPOINT]).scrape()
    build = next(name for name in samples if name.startswith("build_info{"))
    assert f'version="{package_version()}"' in build
    assert f'websockets="{websockets.__version__}"' in build
    assert samples[build] == 1
    assert (samples["up"], samples["clients"], samples["messages_received_total"]) == (1, 0, 0)


def test_a_peer_that_never_answers_pings_is_closed(start_websocket: StartWebsocket, tmp_path: Path) -> None:
    config = tmp_path / "websocket.toml"
    config.write_text(f'endpoints = ["{ENDPOINT}"]\nping_interval = 1\nping_timeout = 1\n')
    daemon = start_websocket([], "--config", str(config))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=TIMEOUT) as peer:
        key = base64.b64encode(os.urandom(16)).decode()
        peer.sendall(
            f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert peer.recv(4096).startswith(b"HTTP/1.1 101")
        assert daemon.wait_metrics(lambda s: s["clients"] == 1)
        # Read what comes (the pings) without ever answering, until the server hangs up.
        while peer.recv(4096):
            pass
    assert daemon.wait_metrics(lambda s: s["clients"] == 0)
