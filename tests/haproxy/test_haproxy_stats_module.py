"""library/haproxy_stats.py, run by ansible itself against a real haproxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ansible_json
import pytest
from haproxy_chain import PROXY, Chain, ChainFactory

READY, DRAIN, MAINT = 0x00, 0x08, 0x01


def run_module(
    args: dict[str, object], tmp_path: Path, *, check_mode: bool = False, through_ansible: bool = False
) -> dict[str, Any]:
    # Through Ansible, with Debian 12's /usr/bin/python3 as the targets run modules.
    interpreter = {"ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"}
    return ansible_json.run_module(
        "haproxy_stats",
        args,
        tmp_path,
        check_mode=check_mode,
        through_ansible=through_ansible,
        extra_env=interpreter,
    )


def module_args(chain: Chain, **extra: object) -> dict[str, object]:
    return {"socket": chain.haproxy.socket_path, "proxy": PROXY, "timeout": 5, **extra}


def names(result: dict[str, Any]) -> list[str]:
    return [server["name"] for server in result["servers"]]


def assert_frontend_reported(result: dict[str, Any], chain: Chain, sessions: int) -> None:
    """The module reports haproxy's own frontend counts, exactly: the chain listens on a loopback
    address of its own, so no stray connection from elsewhere on the machine counts."""
    assert result["proxy"] == {"scur": sessions, "smax": sessions, "slim": 10, "status": "OPEN"}
    assert int(chain.haproxy.stat(PROXY, "FRONTEND")["smax"]) == sessions


def test_query_reports_frontend_and_servers(chain: Chain, tmp_path: Path) -> None:
    chain.open_sessions(3)
    result = run_module(module_args(chain), tmp_path)
    assert result["changed"] is False
    assert "failed" not in result
    assert_frontend_reported(result, chain, sessions=3)
    assert names(result) == chain.servers
    servers = result["servers"]
    for server in servers:
        assert (server["status"], server["admin_state"], server["admin_state_bits"], server["weight"]) == (
            "UP",
            "ready",
            0,
            1,
        )
    assert sum(server["scur"] for server in servers) == 3


def test_host_selects_its_ports_only(chain: Chain, tmp_path: Path) -> None:
    # gw1 owns gw1:PORT lines; gw10:PORT shares the prefix "gw1" but is another host.
    gw1 = [name for name in chain.servers if name.startswith("gw1:")]
    assert len(gw1) == 2
    assert names(run_module(module_args(chain, host="gw1"), tmp_path)) == gw1
    exact = chain.servers[2]
    assert names(run_module(module_args(chain, host=exact), tmp_path)) == [exact]


def test_drain_is_idempotent(chain: Chain, tmp_path: Path) -> None:
    first = run_module(module_args(chain, host="gw1", state="drain"), tmp_path)
    assert first["changed"] is True
    assert first["changed_servers"] == chain.servers[:2]
    assert [s["admin_state"] for s in first["servers"]] == ["drain", "drain"]
    assert [chain.haproxy.admin_bits(name) for name in chain.servers] == [DRAIN, DRAIN, READY]
    assert chain.haproxy.stat(PROXY, chain.servers[0])["status"] == "DRAIN"

    second = run_module(module_args(chain, host="gw1", state="drain"), tmp_path)
    assert second["changed"] is False
    assert second["changed_servers"] == []


def test_check_mode_reports_change_without_making_it(chain: Chain, tmp_path: Path) -> None:
    result = run_module(
        module_args(chain, host="gw1", state="maint"), tmp_path, check_mode=True, through_ansible=True
    )
    assert result["changed"] is True
    assert result["changed_servers"] == chain.servers[:2]
    assert [chain.haproxy.admin_bits(name) for name in chain.servers] == [READY, READY, READY]
    assert chain.haproxy.stat(PROXY, chain.servers[0])["status"] == "UP"


def test_maint_then_ready(chain: Chain, tmp_path: Path) -> None:
    gw1 = chain.servers[:2]
    maint = run_module(module_args(chain, host="gw1", state="maint"), tmp_path)
    assert maint["changed"] is True
    assert [chain.haproxy.admin_bits(name) for name in gw1] == [MAINT, MAINT]
    assert {chain.haproxy.stat(PROXY, name)["status"] for name in gw1} == {"MAINT"}

    # drain from maint clears the maintenance flag: the module must see maint != drain.
    assert run_module(module_args(chain, host="gw1", state="drain"), tmp_path)["changed"] is True
    assert [chain.haproxy.admin_bits(name) for name in gw1] == [DRAIN, DRAIN]

    ready = run_module(module_args(chain, host="gw1", state="ready"), tmp_path)
    assert ready["changed"] is True
    assert [chain.haproxy.admin_bits(name) for name in chain.servers] == [READY, READY, READY]
    chain.haproxy.wait_servers_up(chain.servers)
    assert run_module(module_args(chain, host="gw1", state="ready"), tmp_path)["changed"] is False


def test_weight_zero_is_reported_not_taken_for_drain(chain: Chain, tmp_path: Path) -> None:
    name = chain.servers[2]
    assert chain.haproxy.query(f"set weight {PROXY}/{name} 0").strip() == ""
    (server,) = run_module(module_args(chain, host=name), tmp_path)["servers"]
    assert (server["status"], server["weight"], server["admin_state"]) == ("UP", 0, "ready")


def test_large_show_stat(start_chain: ChainFactory, tmp_path: Path) -> None:
    chain = start_chain(filler_backends=150)
    result = run_module(module_args(chain), tmp_path)
    assert_frontend_reported(result, chain, sessions=0)
    assert names(result) == chain.servers


def test_unknown_host_fails_clearly(chain: Chain, tmp_path: Path) -> None:
    result = run_module(module_args(chain, host="gw9", state="drain"), tmp_path)
    assert result["failed"] is True
    assert result["msg"] == (
        f"no server of proxy {PROXY} is named gw9 or gw9:<port> (servers: {', '.join(chain.servers)})"
    )
    assert [chain.haproxy.admin_bits(name) for name in chain.servers] == [READY, READY, READY]


def test_unknown_proxy_fails_clearly(chain: Chain, tmp_path: Path) -> None:
    result = run_module(module_args(chain, proxy="no-such-proxy"), tmp_path)
    assert result["failed"] is True
    assert result["msg"] == "proxy no-such-proxy not found in haproxy's stats"


def test_unreachable_socket_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "absent.sock"
    result = run_module({"socket": str(path), "proxy": PROXY}, tmp_path)
    assert result["failed"] is True
    assert result["msg"] == f"socket {path} does not exist (is haproxy running?)"


@pytest.mark.parametrize("state", ["ready", "drain", "maint"])
def test_changing_state_requires_host(chain: Chain, tmp_path: Path, state: str) -> None:
    result = run_module(module_args(chain, state=state), tmp_path)
    assert result["failed"] is True
    assert "host" in str(result["msg"])
    assert [chain.haproxy.admin_bits(name) for name in chain.servers] == [READY, READY, READY]


def test_master_socket_counts_the_sessions_of_every_worker(chain: Chain, tmp_path: Path) -> None:
    chain.open_sessions(3)
    chain.reload()
    chain.open_sessions(5)  # 3 left on the old worker, 2 on the new one
    every = run_module(module_args(chain, master_socket=chain.haproxy.master_socket_path), tmp_path)
    assert every["proxy"]["scur"] == 5
    assert sum(server["scur"] for server in every["servers"]) == 5
    # The contrast: the stats socket alone sees the new worker's sessions only.
    current = run_module(module_args(chain), tmp_path)
    assert current["proxy"]["scur"] == 2
    assert sum(server["scur"] for server in current["servers"]) == 2
    # States and limits stay the current worker's.
    assert every["proxy"]["slim"] == 10
    assert [s["admin_state"] for s in every["servers"]] == ["ready"] * 3
