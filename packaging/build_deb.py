#!/usr/bin/python3
"""Build the daemons into one Debian package: build/NAME_VERSION_all.deb, and build/NAME.deb pointing at it.

Every fact comes from this repository: name, version, summary and entry points from pyproject.toml's
[project]; Debian dependencies, maintainer and systemd units from its [tool.build-deb]; the code from every
package under src/ with all its files (package data too). dpkg then owns every installed file, so an upgrade
removes what a new build dropped and `dpkg -s NAME` says which version a host runs.

A build from sources that differ from the last commit is versioned VERSION+dev.HASH (HASH: of those
sources), so a changed tree never reuses a version a host may already have installed.
Reproducible: file times are SOURCE_DATE_EPOCH (default: the last commit's time), owners root, modes fixed.

Usage: packaging/build_deb.py [--output-dir DIR]   (default: build/ of the repository)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
SOURCES = ["src", "pyproject.toml", "packaging"]
SITE_PACKAGES = Path("usr/lib/python3/dist-packages")
# postinst runs systemd-sysusers (bookworm: in systemd, or the standalone package).
SYSUSERS_DEPENDS = "systemd | systemd-standalone-sysusers | systemd-sysusers"
# /usr/bin/NAME for each [project.scripts] entry. -B: a root run (Ansible's --check-config) must not
# leave a __pycache__ that dpkg does not own.
SCRIPT = "#!/usr/bin/python3 -B\nimport sys\n\nfrom {module} import {function}\n\nsys.exit({function}())\n"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def source_files(*paths: str | Path) -> list[Path]:
    """The files git sees under paths (tracked or new, not ignored: no __pycache__), relative to ROOT."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *map(str, paths))
    return sorted({Path(name) for name in listed.split("\0") if name and (ROOT / name).is_file()})


def package_version(released: str) -> str:
    if not git("status", "--porcelain", "--", *SOURCES).strip():
        return released
    digest = hashlib.sha256()
    for path in source_files(*SOURCES):
        digest.update(str(path).encode() + b"\0" + (ROOT / path).read_bytes() + b"\0")
    return f"{released}+dev.{digest.hexdigest()[:10]}"


def python_packages() -> list[Path]:
    """Every importable package directly under src/ (a directory with __init__.py)."""
    return sorted(path.parent for path in (ROOT / "src").glob("*/__init__.py"))


def write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    path.chmod(mode)


def stage_python(tree: Path, project: dict, version: str) -> None:
    site = tree / SITE_PACKAGES
    for package in python_packages():
        for path in source_files(package.relative_to(ROOT)):
            write(site / path.relative_to("src"), (ROOT / path).read_bytes())
    # A dist-info makes importlib.metadata.version() (--version, the metrics) answer what dpkg -s answers.
    dist_info = site / f"{project['name'].replace('-', '_')}-{version}.dist-info"
    write(
        dist_info / "METADATA",
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {version}\n"
        f"Summary: {project['description']}\nRequires-Python: {project['requires-python']}\n",
    )
    write(dist_info / "INSTALLER", "dpkg\n")
    scripts = project.get("scripts", {})
    entry_points = "".join(f"{name} = {target}\n" for name, target in sorted(scripts.items()))
    write(dist_info / "entry_points.txt", f"[console_scripts]\n{entry_points}")
    for name, target in sorted(scripts.items()):
        module, function = target.split(":")
        write(tree / "usr/bin" / name, SCRIPT.format(module=module, function=function), 0o755)


def stage_system(tree: Path, name: str, units: list[str]) -> None:
    for unit in units:
        write(tree / "lib/systemd/system" / unit, (PACKAGING / unit).read_bytes())
    write(tree / f"usr/lib/sysusers.d/{name}.conf", (PACKAGING / "sysusers.conf").read_bytes())
    write(tree / f"usr/share/doc/{name}/copyright", (PACKAGING / "copyright").read_bytes())
    write(tree / f"usr/share/lintian/overrides/{name}", (PACKAGING / "lintian-overrides").read_bytes())


def stage_changelog(tree: Path, name: str, version: str, maintainer: str, epoch: int) -> None:
    # A native package's changelog: one entry naming the commit the build came from.
    commit = git("rev-parse", "--short", "HEAD").strip()
    text = (
        f"{name} ({version}) unstable; urgency=medium\n\n  * Built from commit {commit}.\n\n"
        f" -- {maintainer}  {formatdate(epoch)}\n"
    )
    write(tree / f"usr/share/doc/{name}/changelog.gz", gzip.compress(text.encode(), 9, mtime=epoch))


def extended_description(project: dict, deb: dict) -> str:
    """What the package holds, as control's continuation lines (lintian wants them under 80 columns)."""
    text = (
        f"Python packages {', '.join(package.name for package in python_packages())}, built from the"
        f" fedmsg-gateway bundle. Commands: {', '.join(sorted(project.get('scripts', {})))}."
        f" systemd units: {', '.join(deb['units'])} (not enabled or started by the package)."
    )
    return "".join(f" {line}\n" for line in textwrap.wrap(text, 79))


def stage_control(tree: Path, project: dict, deb: dict, version: str) -> None:
    control = tree / "DEBIAN"
    python = project["requires-python"].removeprefix(">=")
    depends = ", ".join([f"python3 (>= {python})", *deb["depends"], SYSUSERS_DEPENDS])
    write(
        control / "control",
        f"Package: {project['name']}\nVersion: {version}\nArchitecture: all\n"
        f"Maintainer: {deb['maintainer']}\nSection: {deb['section']}\nPriority: optional\n"
        f"Installed-Size: {installed_size(tree)}\nDepends: {depends}\n"
        f"Description: {project['description']}\n{extended_description(project, deb)}",
    )
    substitutions = {"@UNITS@": " ".join(deb["units"]), "@SYSUSERS@": f"{project['name']}.conf"}
    for script in ("postinst", "prerm", "postrm"):
        text = (PACKAGING / "debian" / script).read_text()
        for token, value in substitutions.items():
            text = text.replace(token, value)
        write(control / script, text, 0o755)
    sums = [
        f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.relative_to(tree)}\n"  # noqa: S324 - dpkg's format
        for path in sorted(tree.rglob("*"))
        if path.is_file() and control not in path.parents
    ]
    write(control / "md5sums", "".join(sums))


def installed_size(tree: Path) -> int:
    """KiB, as dpkg-gencontrol counts: every file rounded up to a KiB, 1 per directory."""
    paths = [path for path in tree.rglob("*") if "DEBIAN" not in path.relative_to(tree).parts]
    return sum(-(-path.stat().st_size // 1024) if path.is_file() else 1 for path in paths)


def normalize(tree: Path, epoch: int) -> None:
    for path in [tree, *tree.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def build(output_dir: Path) -> Path:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project, deb = pyproject["project"], pyproject["tool"]["build-deb"]
    name = project["name"]
    version = package_version(project["version"])
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct"))
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "root"
        stage_python(tree, project, version)
        stage_system(tree, name, deb["units"])
        stage_changelog(tree, name, version, deb["maintainer"], epoch)
        stage_control(tree, project, deb, version)
        normalize(tree, epoch)
        output_dir.mkdir(parents=True, exist_ok=True)
        deb_file = output_dir / f"{name}_{version}_all.deb"
        subprocess.run(
            ["dpkg-deb", "--build", "--root-owner-group", "-Zxz", str(tree), str(deb_file)],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
        )
    latest = output_dir / f"{name}.deb"
    latest.unlink(missing_ok=True)
    latest.symlink_to(deb_file.name)
    return deb_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "build", help="default: %(default)s")
    deb_file = build(parser.parse_args().output_dir)
    sys.stdout.write(f"{deb_file}\n")


if __name__ == "__main__":
    main()
