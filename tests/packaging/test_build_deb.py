"""packaging/build_deb.py on a copy of this repository: what the .deb holds, its version, reproducibility."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the build reads (and .gitignore: what it leaves out), copied into a repository of its own.
SOURCES = ["src", "pyproject.toml", "packaging", ".gitignore"]
COMMIT_TIME = "1700000000"


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.org"]
    env = {**os.environ, "GIT_AUTHOR_DATE": f"@{COMMIT_TIME}", "GIT_COMMITTER_DATE": f"@{COMMIT_TIME}"}
    return subprocess.run(
        ["git", *identity, *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed copy of the build's sources."""
    copy = tmp_path / "repo"
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *SOURCES)
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    git(copy, "init", "-q")
    commit(copy)
    return copy


def commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "test build")


def build(repo: Path, output: Path) -> Path:
    env = {key: value for key, value in os.environ.items() if key != "SOURCE_DATE_EPOCH"}
    result = subprocess.run(
        [str(repo / "packaging/build_deb.py"), "--output-dir", str(output)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(result.stdout.strip())


def field(deb: Path, name: str) -> str:
    return subprocess.check_output(["dpkg-deb", "--field", str(deb), name], text=True).strip()


def contents(deb: Path) -> set[str]:
    listing = subprocess.check_output(["dpkg-deb", "--contents", str(deb)], text=True)
    return {line.split()[-1].removeprefix(".") for line in listing.splitlines() if not line.startswith("d")}


def pyproject(repo: Path) -> dict:
    return tomllib.loads((repo / "pyproject.toml").read_text())


def test_a_committed_tree_builds_pyprojects_version(repo: Path, tmp_path: Path) -> None:
    deb = build(repo, tmp_path / "out")
    version = pyproject(repo)["project"]["version"]
    assert field(deb, "Package") == "fedmsg-gateway"
    assert field(deb, "Version") == version
    assert deb.name == f"fedmsg-gateway_{version}_all.deb"
    assert (tmp_path / "out/fedmsg-gateway.deb").resolve() == deb
    depends = field(deb, "Depends")
    assert depends.startswith("python3 (>= 3.11), python3-zmq (>= 24.0.1), ")


def test_every_package_data_file_and_entry_point_is_installed(repo: Path, tmp_path: Path) -> None:
    # A second daemon with package data, as fedmsg_websocket has: found without naming it anywhere.
    (repo / "src/second_daemon/static").mkdir(parents=True)
    (repo / "src/second_daemon/__init__.py").write_text("")
    (repo / "src/second_daemon/static/index.html").write_text("<p>hi</p>\n")
    (repo / "src/fedmsg_gateway/__pycache__").mkdir(exist_ok=True)
    (repo / "src/fedmsg_gateway/__pycache__/relay.cpython-311.pyc").write_bytes(b"stale")
    config = (repo / "pyproject.toml").read_text()
    script = 'second-daemon = "second_daemon:main"'
    (repo / "pyproject.toml").write_text(
        config.replace("[project.scripts]\n", f"[project.scripts]\n{script}\n")
    )
    commit(repo)

    files = contents(build(repo, tmp_path / "out"))

    site = "/usr/lib/python3/dist-packages"
    modules = {f"{site}/fedmsg_gateway/{path.name}" for path in (ROOT / "src/fedmsg_gateway").glob("*.py")}
    assert modules <= files
    assert {f"{site}/second_daemon/__init__.py", f"{site}/second_daemon/static/index.html"} <= files
    assert not [name for name in files if "__pycache__" in name]
    scripts = pyproject(repo)["project"]["scripts"]
    assert {f"/usr/bin/{name}" for name in scripts} <= files
    assert {
        "/lib/systemd/system/fedmsg-gateway.service",
        "/usr/lib/sysusers.d/fedmsg-gateway.conf",
        "/usr/share/doc/fedmsg-gateway/copyright",
    } <= files


def test_a_changed_tree_gets_a_dev_version_of_its_own(repo: Path, tmp_path: Path) -> None:
    version = pyproject(repo)["project"]["version"]
    module = repo / "src/fedmsg_gateway/worker.py"
    module.write_text(module.read_text() + "# changed\n")
    first = field(build(repo, tmp_path / "first"), "Version")
    module.write_text(module.read_text() + "# changed again\n")
    second = field(build(repo, tmp_path / "second"), "Version")
    assert first.startswith(f"{version}+dev.")
    assert second.startswith(f"{version}+dev.")
    assert first != second


def test_the_build_is_reproducible(repo: Path, tmp_path: Path) -> None:
    first = build(repo, tmp_path / "first").read_bytes()
    # Other file times and another umask must not matter.
    os.utime(repo / "src/fedmsg_gateway/relay.py")
    (repo / "src/fedmsg_gateway/relay.py").chmod(0o600)
    assert build(repo, tmp_path / "second").read_bytes() == first


def test_the_installed_commands_report_the_package_version(repo: Path, tmp_path: Path) -> None:
    deb = build(repo, tmp_path / "out")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "--extract", str(deb), str(root)], check=True)
    env = {"PYTHONPATH": str(root / "usr/lib/python3/dist-packages"), "PATH": "/usr/bin:/bin"}
    command = [str(root / "usr/bin/fedmsg-gateway"), "--version"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert result.stdout == f"fedmsg-gateway {field(deb, 'Version')}\n"
    assert not list(root.rglob("__pycache__"))
