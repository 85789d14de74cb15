"""Relay every fedmsg bus message, frames unchanged, to a public ZeroMQ PUB endpoint."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The installed distribution's version: the .deb ships a dist-info (so does pip), so this is
    # what `dpkg -s fedmsg-gateway` shows too.
    __version__ = version("fedmsg-gateway")
except PackageNotFoundError:
    # A source tree on PYTHONPATH that was never installed (no dist-info or egg-info next to it).
    __version__ = "0+unknown"
