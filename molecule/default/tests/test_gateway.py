"""The gateway host: the daemon runs as fedmsg with the configured open-files limit."""

from kit.bundle import role_default
from kit.hosts import main_pid, nofile_limits
from testinfra.host import Host

testinfra_hosts = ["podman://busgateway01"]


def test_gateway_service_is_active_and_enabled(host: Host) -> None:
    service = host.service("fedmsg-gateway")
    assert service.is_running
    assert service.is_enabled


def test_gateway_runs_as_fedmsg(host: Host) -> None:
    pid = main_pid(host, "fedmsg-gateway")
    assert host.check_output("ps -o user= -p %s", str(pid)).strip() == "fedmsg"


def test_gateway_runs_with_the_configured_nofile(host: Host, group_vars: dict) -> None:
    configured = group_vars["busgateway"]["busgateway_nofile"]
    assert nofile_limits(host, main_pid(host, "fedmsg-gateway")) == (configured, configured)


def test_fedmsg_login_sessions_get_the_configured_nofile(host: Host, group_vars: dict) -> None:
    configured = group_vars["busgateway"]["busgateway_nofile"]
    # runuser opens a PAM session, so pam_limits applies the limits.d drop-in.
    limits = host.check_output("runuser -u fedmsg -- /bin/sh -c 'ulimit -Sn; ulimit -Hn'").split()
    assert [int(value) for value in limits] == [configured, configured]


def test_gateway_binds_the_public_port(host: Host) -> None:
    assert host.socket("tcp://0.0.0.0:9940").is_listening


def test_public_port_accept_queue_is_the_configured_backlog(host: Host) -> None:
    # For a listening socket ss shows the accept queue's size as Send-Q (capped by somaxconn).
    configured = role_default("fedmsg_gateway", "fedmsg_gateway_listen_backlog")
    state, _, send_q, *_ = host.check_output("ss -Hltn 'sport = :9940'").split()
    assert (state, int(send_q)) == ("LISTEN", configured)


# `systemd-analyze security fedmsg-gateway.service`, recorded in docs/security.md. Lower is better.
RECORDED_EXPOSURE = 1.4


def test_gateway_sandbox_exposure_does_not_regress(host: Host) -> None:
    report = host.check_output("systemd-analyze security --no-pager fedmsg-gateway.service")
    last_line = report.splitlines()[-1]
    # "→ Overall exposure level for fedmsg-gateway.service: 1.4 OK 🙂"
    exposure = float(last_line.split(": ")[1].split()[0])
    assert exposure <= RECORDED_EXPOSURE, last_line


def test_gateway_memory_is_bounded(host: Host) -> None:
    configured = role_default("fedmsg_gateway", "fedmsg_gateway_memory_max")
    number, unit = configured[:-1], "KMGT".index(configured[-1])
    expected = int(number) * 1024 ** (unit + 1)
    assert host.check_output("systemctl show --property MemoryMax --value fedmsg-gateway") == str(expected)
