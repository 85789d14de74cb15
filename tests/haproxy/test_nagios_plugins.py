"""What every haproxy plugin of roles/nagios_nrpe/files does alike: its version line, its own deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from nagios_plugins import OK, PLUGIN_DIR, UNKNOWN, bundle_version, run_plugin, unix_server

PLUGINS = ["check_haproxy_servers", "check_haproxy_sessions"]


@pytest.mark.parametrize("option", ["-V", "--version"])
@pytest.mark.parametrize("plugin", PLUGINS)
def test_version_is_one_line(plugin: str, option: str) -> None:
    # Through the shebang, as NRPE runs it.
    assert run_plugin(PLUGIN_DIR / plugin, option, prefix=()) == (OK, f"{plugin} {bundle_version()}")


@pytest.mark.parametrize(
    ("plugin", "label", "option", "command"),
    [
        ("check_haproxy_servers", "SERVERS", "--socket", "show stat"),
        ("check_haproxy_sessions", "SESSIONS", "--socket", "show stat"),
        ("check_haproxy_sessions", "SESSIONS", "--master-socket", "show proc"),
    ],
)
def test_socket_that_never_answers_is_unknown_within_the_timeout(
    tmp_path: Path, plugin: str, label: str, option: str, command: str
) -> None:
    """A peer that accepts and then says nothing: only the plugin's own deadline ends the wait.

    The bound is loose (the interpreter's start and imports take seconds on a loaded 2-core machine)
    and still fails without the deadline: the run would then last until the 30 s kill.
    """
    path = tmp_path / "silent.sock"
    with unix_server(path, answer=None):
        started = time.monotonic()
        status, line = run_plugin(PLUGIN_DIR / plugin, option, str(path), "--timeout", "1")
        elapsed = time.monotonic() - started
    assert (status, line) == (
        UNKNOWN,
        f"{label} UNKNOWN - no complete answer to '{command}' from {path} within the timeout",
    )
    assert elapsed < 15
