"""The installed distribution's version, for --version and the build_info metrics."""

from __future__ import annotations

from importlib import metadata


def package_version() -> str:
    try:
        return metadata.version("fedmsg-gateway")
    except metadata.PackageNotFoundError:
        # Run from a source tree (PYTHONPATH=src) or copied onto a host without the distribution's metadata.
        return "unknown"
