"""roles/nagios_nrpe/files/fedmsg_haproxy_metrics, the sessions exporter for Prometheus, against a real
haproxy in master-worker mode: it counts what the Nagios sessions check counts, on every worker."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from haproxy_chain import PROXY, Chain, free_port, wait_until
from nagios_plugins import PLUGIN_DIR, unix_server

EXPORTER = PLUGIN_DIR / "fedmsg_haproxy_metrics"
Scrape = Callable[..., tuple[int, str]]


@pytest.fixture
def start_exporter() -> Iterator[Callable[..., Scrape]]:
    """start(master_socket, *args) -> scrape(path="/metrics"): (HTTP status, body) of a GET."""
    running: list[subprocess.Popen[bytes]] = []

    def start(master: str, *args: str) -> Scrape:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                str(EXPORTER),
                "--master-socket",
                master,
                "--listen",
                f"127.0.0.1:{port}",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        running.append(process)

        def scrape(path: str = "/metrics") -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                    return answer.status, answer.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        def listening() -> bool:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                scrape()
            except urllib.error.URLError:
                return False
            return True

        wait_until(listening, "the exporter to listen")
        return scrape

    yield start
    for process in running:
        process.terminate()
        process.wait(10)


def samples(body: str) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[1]) for line in body.splitlines() if not line.startswith("#")}


def test_sessions_are_summed_over_every_worker(chain: Chain, start_exporter: Callable[..., Scrape]) -> None:
    scrape = start_exporter(chain.haproxy.master_socket_path, "--proxy", PROXY)
    chain.open_sessions(3)
    chain.reload()
    chain.open_sessions(5)  # 3 on the old worker, 2 on the new one: haproxy's own stats show 2

    status, body = scrape()
    assert status == 200
    assert samples(body) == {
        f'fedmsg_haproxy_sessions{{proxy="{PROXY}"}}': 5,
        f'fedmsg_haproxy_session_limit{{proxy="{PROXY}"}}': 10,
        "fedmsg_haproxy_process_connections": 5,
        "fedmsg_haproxy_process_connection_limit": 40,
        "fedmsg_haproxy_old_workers": 1,
    }
    assert chain.haproxy.frontend_scur() == 2
    for name in ("sessions", "session_limit", "process_connections", "old_workers"):
        assert f"# TYPE fedmsg_haproxy_{name} gauge" in body.splitlines()

    # The old worker exits once its sessions end; the count follows.
    for client in chain.clients[:3]:
        client.close()
    wait_until(lambda: len(chain.haproxy.workers()) == 1, "the old worker to exit")
    assert samples(scrape()[1])["fedmsg_haproxy_old_workers"] == 0
    assert samples(scrape()[1])[f'fedmsg_haproxy_sessions{{proxy="{PROXY}"}}'] == 2


def test_unreadable_haproxy_is_a_failed_scrape_not_a_count(
    chain: Chain, start_exporter: Callable[..., Scrape], tmp_path: Path
) -> None:
    missing = start_exporter(str(tmp_path / "missing.sock"), "--proxy", PROXY)
    status, body = missing()
    assert status == 503
    assert body == f"socket {tmp_path / 'missing.sock'} does not exist (is haproxy running?)\n"

    unknown = start_exporter(chain.haproxy.master_socket_path, "--proxy", "no-such-proxy")
    assert unknown() == (503, "proxy no-such-proxy not found in haproxy's stats\n")

    # A master socket that accepts and never answers: 503 within the exporter's timeout.
    silent_path = tmp_path / "silent.sock"
    with unix_server(silent_path, answer=None):
        silent = start_exporter(str(silent_path), "--proxy", PROXY, "--timeout", "1")
        started = time.monotonic()
        status, _ = silent()
        assert status == 503
        assert time.monotonic() - started < 5


def test_other_paths_are_404(chain: Chain, start_exporter: Callable[..., Scrape]) -> None:
    scrape = start_exporter(chain.haproxy.master_socket_path, "--proxy", PROXY)
    assert scrape("/")[0] == 404
