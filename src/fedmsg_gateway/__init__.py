"""Relay every fedmsg bus message, frames unchanged, to a public ZeroMQ PUB endpoint."""

# The release, as pyproject.toml says (tests/unit checks they agree): what --version shows.
__version__ = "1.0.0"
