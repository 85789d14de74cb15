"""One version everywhere: --version, the metrics' build info and the installed distribution agree."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from gateway_harness import Gateway, run_to_exit, scrape

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def printed_version() -> str:
    result = run_to_exit("fedmsg_gateway", "--version")
    assert result.returncode == 0, result
    name, number = result.stdout.split()
    assert name == "fedmsg-gateway"
    return number


def test_version_is_the_installed_distributions() -> None:
    try:
        installed = version("fedmsg-gateway")
    except PackageNotFoundError:
        pytest.skip("fedmsg-gateway is not installed here (a source tree on PYTHONPATH)")
    # The .venv's install is pyproject's; the .deb's is checked in tests/packaging and by Molecule.
    assert installed == tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert printed_version() == installed


def test_build_info_names_the_version_the_daemon_prints(start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway(["tcp://127.0.0.1:1"])
    assert scrape(gateway)[f'build_info{{version="{printed_version()}"}}'] == 1
