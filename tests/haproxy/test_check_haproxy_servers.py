"""check_haproxy_servers (roles/nagios_nrpe/files), run as NRPE runs it, against haproxy and real servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from haproxy_chain import PROXY, Chain, ChainFactory, wait_until
from nagios_plugins import (
    CRITICAL,
    OK,
    PLUGIN_DIR,
    UNKNOWN,
    WARNING,
    run_plugin,
    unix_server,
)

PLUGIN = PLUGIN_DIR / "check_haproxy_servers"
FILLER = "filler-backend-with-a-long-name-0000"


def check(chain: Chain, *extra: str) -> tuple[int, str]:
    return run_plugin(PLUGIN, "--socket", chain.haproxy.socket_path, *extra)


def set_state(chain: Chain, server: str, state: str) -> None:
    assert chain.haproxy.query(f"set server {PROXY}/{server} state {state}").strip() == ""


def perfdata(up: int, down: int, drain: int, maint: int, total: int = 3) -> str:
    return (
        f"{PROXY}_up={up};;1:;0;{total} {PROXY}_down={down};0;;0;{total}"
        f" {PROXY}_drain={drain};;;0;{total} {PROXY}_maint={maint};;;0;{total}"
    )


def test_down_warns_none_up_is_critical_drain_and_maint_are_only_reported(chain: Chain) -> None:
    gw1_a, gw1_b, gw10 = chain.servers
    assert check(chain) == (OK, f"SERVERS OK - {PROXY}: 3 UP | {perfdata(3, 0, 0, 0)}")

    # What the rolling restart sets: named, counted, not alerted while a server is UP.
    set_state(chain, gw1_a, "drain")
    set_state(chain, gw10, "maint")
    assert check(chain) == (
        OK,
        f"SERVERS OK - {PROXY}: 1 UP, 1 DRAIN ({gw1_a}), 1 MAINT ({gw10}) | {perfdata(1, 0, 1, 1)}",
    )

    # A gateway lost for real: its port stops answering and the health check marks it DOWN.
    set_state(chain, gw1_a, "ready")
    set_state(chain, gw10, "ready")
    chain.backends[1].close()
    wait_until(lambda: chain.haproxy.stat(PROXY, gw1_b)["status"] == "DOWN", f"{gw1_b} DOWN")
    assert check(chain) == (
        WARNING,
        f"SERVERS WARNING - {PROXY}: 2 UP, 1 DOWN ({gw1_b}) | {perfdata(2, 1, 0, 0)}",
    )
    # -w is the range of DOWN servers that is still fine.
    assert check(chain, "-w", "1")[0] == OK

    # No server left to take a new subscriber.
    set_state(chain, gw1_a, "maint")
    set_state(chain, gw10, "drain")
    assert check(chain) == (
        CRITICAL,
        f"SERVERS CRITICAL - {PROXY}: 0 UP, 1 DOWN ({gw1_b}), 1 DRAIN ({gw10}), 1 MAINT ({gw1_a})"
        f" | {perfdata(0, 1, 1, 1)}",
    )


def test_critical_range_of_up_servers(chain: Chain) -> None:
    set_state(chain, chain.servers[0], "drain")
    assert check(chain)[0] == OK
    # -c is the range of UP servers needed: all three here.
    status, line = check(chain, "-c", "3:")
    assert status == CRITICAL
    assert f"{PROXY}_up=2;;3:;0;3" in line


def test_every_named_proxy_is_judged(start_chain: ChainFactory) -> None:
    # The filler backend's servers run no health check: haproxy reports them "no check", as up.
    chain = start_chain(filler_backends=1)
    set_state(chain, chain.servers[0], "maint")
    set_state(chain, chain.servers[1], "maint")
    set_state(chain, chain.servers[2], "maint")
    status, line = check(chain, "--proxy", FILLER, "--proxy", PROXY)
    assert status == CRITICAL
    assert line.startswith(f"SERVERS CRITICAL - {FILLER}: 3 UP; {PROXY}: 0 UP, 3 MAINT (")
    assert f" | {FILLER}_up=3;;1:;0;3 " in line
    assert check(chain, "--proxy", FILLER) == (
        OK,
        f"SERVERS OK - {FILLER}: 3 UP | {FILLER}_up=3;;1:;0;3 {FILLER}_down=0;0;;0;3"
        f" {FILLER}_drain=0;;;0;3 {FILLER}_maint=0;;;0;3",
    )


def test_unknown_proxy_and_frontend_without_servers_are_unknown(chain: Chain, tmp_path: Path) -> None:
    assert check(chain, "--proxy", "no-such-proxy") == (
        UNKNOWN,
        "SERVERS UNKNOWN - proxy no-such-proxy not found in haproxy's stats",
    )
    stat = chain.haproxy.query("show stat")
    frontend_only = "\n".join(line for line in stat.splitlines() if ",BACKEND," not in line) + "\n"
    path = tmp_path / "frontend-only.sock"
    with unix_server(path, frontend_only.encode()):
        status, line = run_plugin(PLUGIN, "--socket", str(path))
    assert (status, line) == (
        UNKNOWN,
        f"SERVERS UNKNOWN - proxy {PROXY} has no servers: name a backend or listen section",
    )


def test_unexpected_server_status_is_unknown(chain: Chain, tmp_path: Path) -> None:
    stat = chain.haproxy.query("show stat").replace(",UP,", ",SIDEWAYS,", 1)
    path = tmp_path / "odd.sock"
    with unix_server(path, stat.encode()):
        assert run_plugin(PLUGIN, "--socket", str(path)) == (
            UNKNOWN,
            "SERVERS UNKNOWN - unexpected server status 'SIDEWAYS'",
        )


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("-w", "x"), "argument -w/--warning: invalid Range value: 'x'"),
        (("-c", "3:1"), "argument -c/--critical: invalid Range value: '3:1'"),
        (("-t", "-1"), "argument -t/--timeout: -1 is not a positive number of seconds"),
    ],
)
def test_bad_arguments_are_unknown(args: tuple[str, ...], reason: str) -> None:
    assert run_plugin(PLUGIN, *args) == (UNKNOWN, f"SERVERS UNKNOWN - bad arguments: {reason}")
