"""files/nagios/check_haproxy_sessions, run as NRPE runs it, against a real haproxy."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from haproxy_chain import PROXY, Chain, ChainFactory

PLUGIN = Path(__file__).resolve().parents[2] / "files" / "nagios" / "check_haproxy_sessions"
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS_LINE = re.compile(
    r"^SESSIONS (OK|WARNING|CRITICAL|UNKNOWN) - \S+ \d+/\d+ \(\d+\.\d%\), global \d+/\d+ \(\d+\.\d%\)"
    r" \| sessions=\d+;\d+;\d+;0;\d+ global_sessions=\d+;\d+;\d+;0;\d+$"
)


def run_check(*args: str, prefix: tuple[str, ...] = ()) -> tuple[int, str]:
    # Executed through its shebang, like NRPE does; the output must be exactly one line.
    result = subprocess.run(
        [*prefix, str(PLUGIN), *args], check=False, capture_output=True, text=True, timeout=30
    )
    assert result.stdout.count("\n") == 1, result.stdout + result.stderr
    assert result.stderr == ""
    return result.returncode, result.stdout.rstrip("\n")


def check(chain: Chain, *extra: str) -> tuple[int, str]:
    return run_check("--socket", chain.haproxy.socket_path, "--proxy", PROXY, *extra)


def test_plugin_is_executable_in_git() -> None:
    mode = subprocess.run(
        ["git", "ls-files", "--stage", str(PLUGIN)],
        cwd=PLUGIN.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    assert mode == "100755"
    assert PLUGIN.read_text().startswith("#!/usr/bin/python3\n")


def test_states_follow_proxy_sessions(chain: Chain) -> None:
    chain.open_sessions(3)
    assert check(chain) == (
        OK,
        "SESSIONS OK - fedmsg-raw-zmq 3/10 (30.0%), global 3/40 (7.5%)"
        " | sessions=3;8;9;0;10 global_sessions=3;32;36;0;40",
    )

    # Thresholds apply at the percentage: 8 of 10 is 80 %, warning; 9 of 10 is critical.
    chain.open_sessions(7)
    status, line = check(chain)
    assert (status, line.split(" - ")[0]) == (OK, "SESSIONS OK")
    chain.open_sessions(8)
    status, line = check(chain)
    assert status == WARNING
    assert line.startswith("SESSIONS WARNING - fedmsg-raw-zmq 8/10 (80.0%), global 8/40 (20.0%) |")
    chain.open_sessions(9)
    assert check(chain)[0] == CRITICAL
    chain.open_sessions(10)
    status, line = check(chain)
    assert status == CRITICAL
    assert STATUS_LINE.match(line), line
    assert "sessions=10;8;9;0;10" in line

    chain.close_sessions()
    assert check(chain)[0] == OK


def test_short_options_and_custom_thresholds(chain: Chain) -> None:
    chain.open_sessions(5)
    status, line = run_check("-s", chain.haproxy.socket_path, "-p", PROXY, "-w", "40", "-c", "60", "-t", "3")
    assert status == WARNING
    assert line.endswith("| sessions=5;4;6;0;10 global_sessions=5;16;24;0;40")
    assert run_check("-s", chain.haproxy.socket_path, "-w", "30", "-c", "50")[0] == CRITICAL


def test_tight_global_maxconn_decides(start_chain: ChainFactory) -> None:
    chain = start_chain(listen_maxconn=10, global_maxconn=5)
    chain.open_sessions(4)
    assert check(chain) == (
        WARNING,
        "SESSIONS WARNING - fedmsg-raw-zmq 4/10 (40.0%), global 4/5 (80.0%)"
        " | sessions=4;8;9;0;10 global_sessions=4;4;5;0;5",
    )
    # At global saturation the stats socket still answers: haproxy does not count CLI connections.
    chain.open_sessions(5)
    assert check(chain)[1].startswith("SESSIONS CRITICAL - fedmsg-raw-zmq 5/10 (50.0%), global 5/5 (100.0%)")


def test_large_show_stat_is_read_to_the_end(start_chain: ChainFactory) -> None:
    chain = start_chain(filler_backends=150)
    stat = chain.haproxy.query("show stat")
    # The listen comes last in the config, so its rows lie beyond what a 64 KiB read would see.
    assert len(stat.encode()) > 2 * 65536
    assert stat.index(f"\n{PROXY},FRONTEND,") > 65536
    chain.open_sessions(2)
    status, line = check(chain)
    assert status == OK
    assert line.startswith("SESSIONS OK - fedmsg-raw-zmq 2/10 (20.0%), global 2/40 (5.0%) |")


def test_missing_socket_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "absent.sock"
    assert run_check("--socket", str(path)) == (
        UNKNOWN,
        f"SESSIONS UNKNOWN - stats socket {path} does not exist (is haproxy running?)",
    )


def test_stale_socket_is_unknown(tmp_path: Path) -> None:
    # A socket file left behind by a stopped haproxy refuses connections.
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    assert run_check("--socket", str(path)) == (
        UNKNOWN,
        f"SESSIONS UNKNOWN - connection refused on stats socket {path} (is haproxy running?)",
    )


def test_silent_socket_times_out(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        path = tmp_path / "silent.sock"
        sock.bind(str(path))
        sock.listen()  # never accepted: the client connects, sends, and waits for an answer
        started = time.monotonic()
        status, line = run_check("--socket", str(path), "--timeout", "0.5")
        elapsed = time.monotonic() - started
    assert status == UNKNOWN
    assert line == f"SESSIONS UNKNOWN - no complete answer to 'show stat' from {path} within the timeout"
    assert elapsed < 5


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to switch user")
def test_permission_denied_is_unknown(chain: Chain) -> None:
    # The socket is mode 600 root, as Debian's haproxy admin socket is to anyone outside its group.
    chain.haproxy.workdir.chmod(0o755)
    status, line = run_check(
        "--socket",
        chain.haproxy.socket_path,
        prefix=("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"),
    )
    assert (status, line) == (
        UNKNOWN,
        f"SESSIONS UNKNOWN - permission denied on stats socket {chain.haproxy.socket_path}",
    )


def test_unknown_proxy_is_unknown(chain: Chain) -> None:
    assert run_check("--socket", chain.haproxy.socket_path, "--proxy", "no-such-proxy") == (
        UNKNOWN,
        "SESSIONS UNKNOWN - proxy no-such-proxy not found in haproxy's stats",
    )


def test_backend_only_proxy_is_unknown(start_chain: ChainFactory) -> None:
    # A backend's slim is its fullconn, not a session limit; the check refuses to judge it.
    chain = start_chain(filler_backends=1)
    status, line = run_check(
        "--socket", chain.haproxy.socket_path, "--proxy", "filler-backend-with-a-long-name-0000"
    )
    assert status == UNKNOWN
    assert "has no FRONTEND row" in line


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("-w", "95", "-c", "90"), "--warning must not be above --critical"),
        (("-w", "120"), "120 is outside 0-100"),
        (("-c", "-1"), "-1 is outside 0-100"),
        (("-w", "eighty"), "not a number: 'eighty'"),
        (("--timeout", "0"), "0 is not a positive number of seconds"),
        (("--no-such-option",), "unrecognized arguments: --no-such-option"),
    ],
)
def test_bad_arguments_are_unknown(args: tuple[str, ...], reason: str) -> None:
    status, line = run_check(*args)
    assert status == UNKNOWN
    assert line.startswith("SESSIONS UNKNOWN - bad arguments:")
    assert reason in line


def test_help_says_thresholds_are_inclusive() -> None:
    result = subprocess.run([str(PLUGIN), "--help"], capture_output=True, text=True, timeout=30, check=True)
    assert "at or above" in result.stdout
    for option in ("--socket", "--proxy", "--warning", "--critical", "--timeout"):
        assert option in result.stdout
