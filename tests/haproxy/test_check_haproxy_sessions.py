"""check_haproxy_sessions (roles/nagios_nrpe/files), run as NRPE runs it, against a master-worker haproxy."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from haproxy_chain import PROXY, Chain, ChainFactory, wait_until
from nagios_plugins import (
    CRITICAL,
    OK,
    PLUGIN_DIR,
    UNKNOWN,
    WARNING,
    install_copy,
    run_plugin,
    unix_server,
)

PLUGIN = PLUGIN_DIR / "check_haproxy_sessions"
STATUS_LINE = re.compile(
    r"^SESSIONS (OK|WARNING|CRITICAL|UNKNOWN) - \S+ \d+/\d+ \(\d+\.\d%\), global \d+/\d+ \(\d+\.\d%\)"
    r" \| sessions=\d+;\d+;\d+;0;\d+ global_sessions=\d+;\d+;\d+;0;\d+$"
)


def run_check(*args: str) -> tuple[int, str]:
    return run_plugin(PLUGIN, *args)


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

    # Plain thresholds are the guidelines' ranges 0:80 and 0:90: 80 % itself is still OK, above
    # it WARNING (9 of 10 is 90 %), above 90 % CRITICAL.
    chain.open_sessions(8)
    status, line = check(chain)
    assert (status, line.split(" - ")[0]) == (OK, "SESSIONS OK")
    chain.open_sessions(9)
    status, line = check(chain)
    assert status == WARNING
    assert line.startswith("SESSIONS WARNING - fedmsg-raw-zmq 9/10 (90.0%), global 9/40 (22.5%) |")
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
    assert run_check("-s", chain.haproxy.socket_path, "-w", "30", "-c", "45")[0] == CRITICAL


@pytest.mark.parametrize(
    ("warning", "critical", "state", "thresholds"),
    [
        # 5 sessions of 10 are 50 %; the perfdata shows the ranges in sessions.
        ("10:", "5:", OK, "1:;0.5:"),  # alert below 10 % / 5 %
        ("60:", "5:", WARNING, "6:;0.5:"),
        ("~:40", "100", WARNING, "~:4;10"),
        ("40:60", "0:100", OK, "4:6;10"),
        ("@40:60", "100", WARNING, "@4:6;10"),  # alert inside the range
        ("80", "@50:50", CRITICAL, "8;@5:5"),
    ],
)
def test_range_thresholds(
    start_chain: ChainFactory, warning: str, critical: str, state: int, thresholds: str
) -> None:
    # Both pairs at 50 %, so that either one alerting is the range's doing.
    chain = start_chain(listen_maxconn=10, global_maxconn=10)
    chain.open_sessions(5)
    status, line = check(chain, "-w", warning, "-c", critical)
    assert status == state, line
    assert line.endswith(f" | sessions=5;{thresholds};0;10 global_sessions=5;{thresholds};0;10")


def test_tight_global_maxconn_decides(start_chain: ChainFactory) -> None:
    chain = start_chain(listen_maxconn=10, global_maxconn=5)
    chain.open_sessions(4)
    assert check(chain, "-w", "75") == (
        WARNING,
        "SESSIONS WARNING - fedmsg-raw-zmq 4/10 (40.0%), global 4/5 (80.0%)"
        " | sessions=4;7.5;9;0;10 global_sessions=4;3.75;4.5;0;5",
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
        f"SESSIONS UNKNOWN - socket {path} does not exist (is haproxy running?)",
    )


def test_stale_socket_is_unknown(tmp_path: Path) -> None:
    # A socket file left behind by a stopped haproxy refuses connections.
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    assert run_check("--socket", str(path)) == (
        UNKNOWN,
        f"SESSIONS UNKNOWN - connection refused on socket {path} (is haproxy running?)",
    )


@pytest.mark.parametrize(
    ("option", "answer", "reason"),
    [
        ("--socket", b"Unknown command.\n", "unexpected answer to 'show stat': 'Unknown command.'"),
        ("--socket", b"", "unexpected answer to 'show stat': ''"),
        ("--master-socket", b"\x00\xffgarbage", "unexpected answer to 'show proc' from"),
    ],
)
def test_garbage_answer_is_unknown(tmp_path: Path, option: str, answer: bytes, reason: str) -> None:
    path = tmp_path / "garbage.sock"
    with unix_server(path, answer):
        status, line = run_check(option, str(path))
    assert status == UNKNOWN
    assert line.startswith(f"SESSIONS UNKNOWN - {reason}"), line


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to switch user")
def test_permission_denied_is_unknown(chain: Chain) -> None:
    # The socket is mode 600 root, as Debian's haproxy admin socket is to anyone outside its group.
    # The plugin runs from a copy beside it: nobody may not read a checkout under /root.
    chain.haproxy.workdir.chmod(0o755)
    plugins = chain.haproxy.workdir / "plugins"
    plugins.mkdir()
    plugin = install_copy(PLUGIN.name, plugins)
    status, line = run_plugin(
        plugin,
        "--socket",
        chain.haproxy.socket_path,
        prefix=("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"),
    )
    assert (status, line) == (
        UNKNOWN,
        f"SESSIONS UNKNOWN - permission denied on socket {chain.haproxy.socket_path}",
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
        (("-c", "-1"), "invalid Range value: '-1'"),  # 0:-1 ends before it starts
        (("-w", "20:10"), "invalid Range value: '20:10'"),
        (("-w", "eighty"), "invalid Range value: 'eighty'"),
        (("-w", "1:2:3"), "invalid Range value: '1:2:3'"),
        (("--timeout", "0"), "0 is not a positive number of seconds"),
        (("--no-such-option",), "unrecognized arguments: --no-such-option"),
    ],
)
def test_bad_arguments_are_unknown(args: tuple[str, ...], reason: str) -> None:
    status, line = run_check(*args)
    assert status == UNKNOWN
    assert line.startswith("SESSIONS UNKNOWN - bad arguments:")
    assert reason in line


def test_help_names_every_option() -> None:
    result = subprocess.run([str(PLUGIN), "--help"], capture_output=True, text=True, timeout=30, check=True)
    assert "a plain 80\nalerts above 80 %" in result.stdout
    for option in (
        "--socket",
        "--master-socket",
        "--proxy",
        "--warning",
        "--critical",
        "--timeout",
        "--version",
    ):
        assert option in result.stdout


def test_master_socket_counts_the_sessions_left_on_old_workers(chain: Chain) -> None:
    """The defect of issue 14: after a reload the new worker's stats miss every older session."""
    chain.open_sessions(3)
    chain.reload()
    chain.open_sessions(5)  # 3 on the old worker, 2 on the new one
    master = ("--master-socket", chain.haproxy.master_socket_path)
    assert check(chain, *master, "-w", "40") == (
        WARNING,
        "SESSIONS WARNING - fedmsg-raw-zmq 5/10 (50.0%), global 5/40 (12.5%), 1 old worker(s)"
        " | sessions=5;4;9;0;10 global_sessions=5;16;36;0;40 old_workers=1;;;0",
    )
    # The contrast: the stats socket alone is the new worker's view.
    assert check(chain, "-w", "40")[1].startswith("SESSIONS OK - fedmsg-raw-zmq 2/10 (20.0%), global 2/40")

    # A second reload: three workers, each counted once.
    chain.reload()
    chain.open_sessions(6)
    assert check(chain, *master)[1].startswith(
        "SESSIONS OK - fedmsg-raw-zmq 6/10 (60.0%), global 6/40 (15.0%), 2 old worker(s) |"
    )

    # Once their sessions end the old workers exit, and the count follows.
    for client in chain.clients[:5]:
        client.close()
    wait_until(lambda: len(chain.haproxy.workers()) == 1, "the old workers to exit")
    assert check(chain, *master)[1].startswith(
        "SESSIONS OK - fedmsg-raw-zmq 1/10 (10.0%), global 1/40 (2.5%), 0 old worker(s) |"
    )
