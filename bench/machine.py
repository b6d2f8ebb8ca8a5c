"""What the results were measured on: the machine, the software versions and how busy the machine was."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.broker import KAFKA_SCRIPT
from bench.procs import REPO_ROOT


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _kafka_version() -> str:
    found = re.search(r'KAFKA_VERSION="\$\{KAFKA_VERSION:-([^}]+)\}"', KAFKA_SCRIPT.read_text())
    return os.environ.get("KAFKA_VERSION") or (found.group(1) if found else "unknown")


def tree_commit() -> str:
    """The checked-out commit, and whether the working tree differs from it."""
    root = REPO_ROOT
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head} with uncommitted changes" if changed else head


@dataclass(frozen=True)
class Machine:
    """The facts printed at the top of the results."""

    cpu: str
    cores: int
    memory_gib: float
    system: str
    python: str
    versions: dict[str, str]
    load_average: tuple[float, float, float]
    commit: str = "unknown"

    @classmethod
    def describe(cls) -> Machine:
        """This machine, now."""
        packages = ("torch", "faust-streaming", "aiokafka", "rocksdict", "quixstreams", "confluent-kafka", "py-spy")
        return cls(
            cpu=_cpu_model(),
            cores=os.cpu_count() or 0,
            memory_gib=_memory_gib(),
            system=f"{platform.system()} {platform.release()}",
            python=platform.python_version(),
            versions={"kafka": _kafka_version(), **{p: _version(p) for p in packages}},
            load_average=os.getloadavg(),
            commit=tree_commit(),
        )
