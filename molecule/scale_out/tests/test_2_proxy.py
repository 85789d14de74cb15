"""proxy01 after the flow: both gateways in fedmsg-raw-zmq, the port range, sessions kept over the reload."""

import time

from conftest import GATEWAYS
from kit.hosts import haproxy_servers as servers
from kit.hosts import haproxy_stats as stats
from kit.hosts import read_json
from testinfra.host import Host

testinfra_hosts = ["podman://proxy01"]

# Same Python one-liner pattern as the stats helper: (start time since the epoch) of haproxy's workers.
_WORKERS_SCRIPT = (
    "import os,subprocess,sys\n"
    "master=sys.argv[1]\n"
    "btime=next(int(l.split()[1]) for l in open('/proc/stat') if l.startswith('btime'))\n"
    "tick=os.sysconf('SC_CLK_TCK')\n"
    "pids=subprocess.run(['ps','--ppid',master,'-o','pid='],capture_output=True,text=True).stdout.split()\n"
    "for pid in pids:\n"
    "    start=int(open(f'/proc/{pid}/stat').read().rsplit(')',1)[1].split()[19])\n"
    "    print(pid, btime + start / tick)\n"
)


def test_both_gateways_are_up_on_every_port(host: Host, ports: list[int]) -> None:
    assert {name: row["status"] for name, row in servers(host).items()} == {
        f"{gateway}:{port}": "UP" for gateway in GATEWAYS for port in ports
    }


def test_listen_limit_is_the_configured_maxconn(host: Host, group_vars: dict) -> None:
    assert int(stats(host)["FRONTEND"]["slim"]) == group_vars["proxies"]["haproxy_fedmsg_maxconn"]


def test_port_range_drop_in_matches_the_running_range(host: Host, group_vars: dict) -> None:
    configured = group_vars["proxies"]["haproxy_ip_local_port_range"].split()
    drop_in = host.file("/etc/sysctl.d/60-haproxy-fedmsg.conf")
    assert drop_in.mode == 0o644
    lines = [line for line in drop_in.content_string.splitlines() if line and not line.startswith("#")]
    assert lines == [f"net.ipv4.ip_local_port_range={' '.join(configured)}"]
    assert host.file("/proc/sys/net/ipv4/ip_local_port_range").content_string.split() == configured


def test_sessions_opened_before_the_reload_still_receive(host: Host, app: Host) -> None:
    master = host.check_output("systemctl show --property MainPID --value haproxy")
    lines = host.check_output("python3 -c %s %s", _WORKERS_SCRIPT, master).splitlines()
    workers = sorted((float(start), int(pid)) for pid, start in (line.split() for line in lines))
    # The reload started a new worker; the old one still serves the sessions it had.
    assert len(workers) >= 2, f"one haproxy worker: no reload, or old sessions were dropped ({workers})"
    reloaded_at = workers[-1][0]
    time.sleep(2)
    status = read_json(app, "/run/early-subscribers.json")
    assert status is not None
    for subscriber in status["subscribers"]:
        label = f"early subscriber {subscriber['index']}"
        connected = len(subscriber["handshakes"]) == len(subscriber["disconnects"]) + 1
        assert connected, f"{label} is not connected"
        assert subscriber["handshakes"][-1] < reloaded_at, f"{label} connected after the reload"
        after_reload = [r for r in subscriber["received"] if r[1] > reloaded_at]
        assert len(after_reload) > 10, f"{label} received {len(after_reload)} messages since the reload"
        assert status["now"] - subscriber["received"][-1][2] < 3, f"{label} stopped receiving"
        sequence = [r[0] for r in subscriber["received"] if r[2] > subscriber["handshakes"][-1] + 3]
        assert sequence == list(range(sequence[0], sequence[0] + len(sequence))), f"{label} lost messages"
