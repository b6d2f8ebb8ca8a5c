"""CPU time of the benchmark's processes from /proc: which process is which, the broker's threads by group, and
each one's share of a core between two samples (Linux only)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

BROKER_THREAD_GROUPS: tuple[tuple[str, str], ...] = (
    ("data-plane", "network and request handlers"),
    ("C2 Compiler", "JIT compiler"),
    ("C1 Compiler", "JIT compiler"),
    ("GC Thread", "garbage collector"),
    ("G1 ", "garbage collector"),
)
"""Java thread names (as the kernel keeps them, cut to 15 characters) by prefix, and the group they count in."""


def process_label(cmdline: str, pid: int, parent: int, me: int) -> str | None:
    """Which part of the benchmark a process is, from its command line; None for anything else."""
    if pid == me:
        return "benchmark (profile reader)"
    if "kafka.Kafka" in cmdline:
        return "broker"
    if "streams.cli worker" in cmdline:
        return "worker"
    if parent == me and "spawn_main" in cmdline:
        return "paced load"
    return None


def broker_thread_group(thread_name: str) -> str:
    """The group a broker thread's CPU counts in."""
    for prefix, group in BROKER_THREAD_GROUPS:
        if thread_name.startswith(prefix):
            return group
    return "other threads"


def _stat_fields(text: str) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow its last ")".
    return text.rsplit(")", 1)[1].split()


def _cpu_s(fields: Sequence[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far, per labelled process and per broker thread group, at one moment."""

    at: float
    processes: dict[str, float]
    broker_threads: dict[str, float]


def sample_cpu(me: int) -> CpuSample:
    """Read /proc for the benchmark's processes."""
    processes: dict[str, float] = {}
    threads: dict[str, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(Path(f"/proc/{entry}/stat").read_text())
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        label = process_label(cmdline, int(entry), int(fields[1]), me)
        if label is None:
            continue
        processes[label] = processes.get(label, 0.0) + _cpu_s(fields)
        if label == "broker":
            for group, cpu in _thread_cpu(int(entry)).items():
                threads[group] = threads.get(group, 0.0) + cpu
    return CpuSample(time.monotonic(), processes, threads)


def _thread_cpu(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except OSError:
            continue
        group = broker_thread_group(text.split("(", 1)[1].rsplit(")", 1)[0])
        out[group] = out.get(group, 0.0) + _cpu_s(_stat_fields(text))
    return out


def core_shares(before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Share of one core each name used between two samples (names in both), largest first."""
    shares = {name: (after[name] - before[name]) / seconds for name in after if name in before}
    return dict(sorted(shares.items(), key=lambda item: -item[1]))
