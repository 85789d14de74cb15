"""Prometheus text exposition (format 0.0.4) and the process_* metrics both daemons export.

The process metrics are the ones Prometheus's client libraries export under these names, read from
/proc/self the same way, so dashboards and rules written for any exporter work here. Under the
daemons' sandbox (ProcSubset=pid) /proc/stat is hidden: the start time comes from the process's own
stat and CLOCK_BOOTTIME instead of /proc/stat's btime.
"""

from __future__ import annotations

import functools
import os
import resource
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGESIZE")


@dataclass(frozen=True)
class Sample:
    """One sample of a family with one sample: full name, type, HELP text, value, labels."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(samples: Iterable[Sample]) -> str:
    """HELP, TYPE and the sample line for every sample, in the order given."""
    lines = []
    for sample in samples:
        labels = ",".join(f'{key}="{_escape(value)}"' for key, value in sample.labels.items())
        lines += [
            f"# HELP {sample.name} {sample.help}",
            f"# TYPE {sample.name} {sample.kind}",
            f"{sample.name}{{{labels}}} {sample.value}" if labels else f"{sample.name} {sample.value}",
        ]
    return "\n".join(lines) + "\n"


def _stat() -> list[str]:
    """/proc/self/stat's fields from field 3 (state) on: the command name before may hold spaces."""
    with open("/proc/self/stat") as stat:
        return stat.read().rpartition(")")[2].split()


@functools.cache
def start_time() -> float:
    """When this process started, in seconds since the epoch (fixed: computed once)."""
    started_after_boot = int(_stat()[19]) / _TICKS  # field 22, starttime, in clock ticks since boot
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - started_after_boot)


def process_samples() -> list[Sample]:
    """process_* for this process, read now."""
    fields = _stat()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14, 15: utime, stime
    soft_nofile, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return [
        Sample("process_cpu_seconds_total", "counter", "User and system CPU time spent, seconds.", cpu),
        Sample(
            "process_open_fds",
            "gauge",
            "Open file descriptors (subscribers, clients, sockets, files).",
            len(os.listdir("/proc/self/fd")),
        ),
        Sample(
            "process_max_fds",
            "gauge",
            "The open-files limit in force (soft RLIMIT_NOFILE, systemd's LimitNOFILE).",
            soft_nofile,
        ),
        Sample("process_virtual_memory_bytes", "gauge", "Virtual memory size, bytes.", int(fields[20])),
        Sample(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, bytes.",
            int(fields[21]) * _PAGE,
        ),
        Sample(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the epoch, seconds.",
            round(start_time(), 3),
        ),
    ]
