"""The gateway host runs the daemons' package: one version everywhere, the packaged unit, clean upgrades."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from kit.bundle import GATEWAY_METRICS_PORT, PROJECT
from kit.hosts import main_pid, metrics_page
from testinfra.host import Host

testinfra_hosts = ["podman://busgateway01"]

BUILT = PROJECT / "build/fedmsg-gateway.deb"
SITE = "/usr/lib/python3/dist-packages"
UNIT = "/lib/systemd/system/fedmsg-gateway.service"


def built_version() -> str:
    return subprocess.check_output(["dpkg-deb", "--field", str(BUILT), "Version"], text=True).strip()


def installed_version(host: Host) -> str:
    return host.check_output("dpkg-query --show --showformat '${Version}' fedmsg-gateway")


def test_the_installed_package_is_the_build_of_pyprojects_version(host: Host) -> None:
    released = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
    installed = installed_version(host)
    assert installed == built_version()
    # A build from uncommitted sources is VERSION+dev.HASH (packaging/build_deb.py).
    assert installed.partition("+dev.")[0] == released


def test_version_build_info_and_dpkg_agree(host: Host) -> None:
    installed = installed_version(host)
    assert host.check_output("fedmsg-gateway --version") == f"fedmsg-gateway {installed}"
    metrics = metrics_page(host, GATEWAY_METRICS_PORT)
    assert f'fedmsg_gateway_build_info{{version="{installed}"}} 1' in metrics.splitlines()


def test_the_unit_is_the_packaged_one_with_the_roles_drop_ins(host: Host) -> None:
    show = host.check_output("systemctl show --property FragmentPath --property DropInPaths fedmsg-gateway")
    properties = dict(line.split("=", 1) for line in show.splitlines())
    assert properties["FragmentPath"] == UNIT
    assert host.check_output("dpkg-query --search %s", UNIT) == f"fedmsg-gateway: {UNIT}"
    drop_ins = {Path(path).name for path in properties["DropInPaths"].split()}
    assert drop_ins == {"tuning.conf", "nofile.conf"}


def test_the_layout_before_the_package_is_gone(host: Host) -> None:
    # Planted by molecule/shared/prepare.yml: the role migrates a host deployed before the package.
    assert not host.file("/usr/local/lib/fedmsg-gateway").exists
    assert not host.file("/etc/systemd/system/fedmsg-gateway.service").exists


def test_dpkg_owns_every_file_of_the_code(host: Host) -> None:
    # Converge ran --check-config as root: no __pycache__ may appear that dpkg does not own.
    on_disk = set(host.check_output("find %s/fedmsg_gateway -mindepth 1", SITE).splitlines())
    owned = set(host.check_output("dpkg-query --listfiles fedmsg-gateway").splitlines())
    assert on_disk
    assert on_disk <= owned


@pytest.fixture
def older_build(tmp_path: Path) -> Path:
    """The committed sources as release 1.0.0 with one module more: a module the current build dropped."""
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT), str(clone)], check=True)
    pyproject = clone / "pyproject.toml"
    pyproject.write_text(re.sub(r'(?m)^version = ".*"$', 'version = "1.0.0"', pyproject.read_text(), count=1))
    (clone / "src/fedmsg_gateway/retired.py").write_text('"""In 1.0.0 only."""\n')
    build = [str(clone / "packaging/build_deb.py"), "--output-dir", str(tmp_path / "out")]
    return Path(subprocess.check_output(build, text=True).strip())


def test_an_upgrade_removes_the_module_the_new_build_dropped(host: Host, older_build: Path) -> None:
    current = installed_version(host)
    retired_path = f"{SITE}/fedmsg_gateway/retired.py"
    retired = host.file(retired_path)
    pid = main_pid(host, "fedmsg-gateway")
    subprocess.run(["podman", "cp", str(older_build), "busgateway01:/tmp/older.deb"], check=True)
    try:
        host.check_output("dpkg --install /tmp/older.deb")
        assert installed_version(host).startswith("1.0.0")
        assert retired.exists
    finally:
        # Upgrade to the build the role deployed (its copy on the host).
        host.check_output("dpkg --install /var/cache/fedmsg-gateway/fedmsg-gateway.deb")
        host.run("rm -f /tmp/older.deb")
    assert installed_version(host) == current
    assert not retired.exists
    assert retired_path not in host.check_output("dpkg-query --listfiles fedmsg-gateway").splitlines()
    # Neither install (re)started the daemon: Ansible alone decides when it restarts.
    assert host.service("fedmsg-gateway").is_running
    assert main_pid(host, "fedmsg-gateway") == pid
