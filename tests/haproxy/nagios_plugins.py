"""Run the nagios_nrpe role's plugins (roles/nagios_nrpe/files), one line of output expected.

Under this interpreter by default, so that the coverage gate measures them; `prefix=()` runs one
through its shebang (Debian's /usr/bin/python3 and python3-nagiosplugin), as NRPE does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "roles" / "nagios_nrpe" / "files"
# What the plugins import from their own directory, installed beside them by the role.
SHARED_MODULES = ("fedmsg_haproxy.py", "haproxy_cli.py")
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


def bundle_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def run_plugin(plugin: Path, *args: str, prefix: tuple[str, ...] = (sys.executable,)) -> tuple[int, str]:
    result = subprocess.run(
        [*prefix, str(plugin), *args], check=False, capture_output=True, text=True, timeout=30
    )
    assert result.stdout.count("\n") == 1, result.stdout + result.stderr
    assert result.stderr == ""
    return result.returncode, result.stdout.rstrip("\n")


def install_copy(plugin: str, directory: Path) -> Path:
    """The plugin and the modules it imports, as the role installs them, in a directory anyone can read.

    For runs as another user: the checkout may sit in a 0700 directory such as /root.
    """
    directory.chmod(0o755)
    for name in (plugin, *SHARED_MODULES):
        shutil.copy(PLUGIN_DIR / name, directory / name)
        (directory / name).chmod(0o755 if name == plugin else 0o644)
    return directory / plugin


@contextmanager
def unix_server(path: Path, answer: bytes | None) -> Iterator[None]:
    """A Unix socket that accepts every connection, reads the command and answers `answer` then closes,
    or (None) stays silent."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            if answer is None:
                held.append(conn)
            else:
                with conn:
                    conn.recv(4096)
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
