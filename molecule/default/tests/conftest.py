"""The default scenario's fixtures, from the shared test kit (tests/kit)."""

from kit.probes import heartbeats
from kit.scenario import group_vars

__all__ = ["group_vars", "heartbeats"]
