"""`site.yml --check --diff` finds drift without touching anything (Fedora ran it nightly).

After a file is edited by hand on one host of the converged chain, it reports exactly that file, with
the hand-made line in its diff, and the restart it would bring, nothing else and no failure; the file
and the service stay as they were.
"""

from collections.abc import Iterator

import pytest
from kit.hosts import main_pid
from kit.scenario import needs_molecule_inventory, site_playbook, task_results
from testinfra.host import Host

testinfra_hosts = ["podman://busgateway01"]

CONFIG = "/etc/fedmsg-gateway/gateway.toml"
HAND_EDIT = "# edited by hand on the host"


def changed(report: dict) -> list[tuple[str, str, dict]]:
    return [(task, host, result) for task, host, result in task_results(report) if result.get("changed")]


@pytest.fixture
def hand_edited_config(host: Host) -> Iterator[str]:
    """gateway.toml with a line added by hand; the original content is put back afterwards."""
    original = host.file(CONFIG).content_string
    host.check_output("echo %s >> %s", HAND_EDIT, CONFIG)
    try:
        yield original
    finally:
        host.check_output("sed -i '$d' %s", CONFIG)
        assert host.file(CONFIG).content_string == original


@needs_molecule_inventory
def test_check_mode_reports_a_hand_edit_and_nothing_else_without_touching_it(
    host: Host, hand_edited_config: str
) -> None:
    """One run proves both halves (each run costs over a minute of CI): with a single hand edit on the
    converged chain, the hand-edited file and the restart it would bring are the only changes reported,
    so everything else is reported unchanged; nothing fails; and neither change happens."""
    pid = main_pid(host, "fedmsg-gateway")
    returncode, report = site_playbook("--check", "--diff")
    assert returncode == 0
    assert {stats["failures"] + stats["unreachable"] for stats in report["stats"].values()} == {0}
    drift = [(task, host_name) for task, host_name, result in changed(report) if "diff" in result]
    assert [host_name for _, host_name in drift] == ["busgateway01"], drift
    diffs = next(result["diff"] for _, _, result in changed(report) if "diff" in result)
    (diff,) = diffs if isinstance(diffs, list) else [diffs]
    assert diff["before_header"] == CONFIG
    assert HAND_EDIT in diff["before"]
    assert HAND_EDIT not in diff["after"]
    # Only the file and the restart it would bring are reported; neither happened.
    others = [task for task, _, result in changed(report) if "diff" not in result]
    # ansible-core 2.19 names a role's handlers like its tasks: "ROLE : NAME".
    assert others == ["fedmsg_gateway : Restart fedmsg-gateway"], others
    assert HAND_EDIT in host.file(CONFIG).content_string
    assert main_pid(host, "fedmsg-gateway") == pid
