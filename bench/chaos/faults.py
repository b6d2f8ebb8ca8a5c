"""The faults: worker processes killed and restarted, the broker killed and paused, a state disk that fills up.

Workers are started through the project's one harness, ``bench.procs`` (the tests reach it through their fixture,
``bench.procs.start_worker`` in the runner); the supervisor only needs what both offer.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.broker import BenchBroker
from bench.procs import REPO_ROOT
from bench.procs import WorkerProcess as BenchWorkerProcess

MiB = 1024 * 1024


class WorkerHandle(Protocol):
    """A running ``profilestream worker`` process, as both harnesses return it."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL and reap."""

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, SIGKILL after ``timeout_s``; the exit code."""


@dataclass
class KillableWorker(BenchWorkerProcess):
    """``bench.procs``' worker process with the ``kill`` the supervisor needs."""

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush or commit."""
        self.proc.kill()
        self.proc.wait()


class Supervisor:
    """Keeps one worker running as an orchestrator would: a worker that exits is started again (after a short
    back-off), and counted; ``kill9`` is the fault, not an exit."""

    def __init__(self, spawn: Callable[[str], WorkerHandle], log: Callable[[str], None]) -> None:
        self._spawn = spawn
        self._log = log
        self.worker: WorkerHandle | None = None
        self.starts = 0
        self.kills = 0
        self.exit_codes: list[int] = []
        self.logs: list[Path] = []
        self._restart_at: float | None = None

    def start(self) -> None:
        """Start a worker (there must be none running)."""
        assert self.worker is None or self.worker.proc.poll() is not None
        self.worker = self._spawn(f"worker-{self.starts}")
        self.logs.append(self.worker.log_path)
        self.starts += 1
        self._restart_at = None

    def kill9(self) -> None:
        """SIGKILL the running worker; it is not restarted until :meth:`start`."""
        if self.worker is not None and self.worker.proc.poll() is None:
            self.worker.kill()
            self.kills += 1
        self.worker = None

    def keep_alive(self) -> None:
        """Notice a worker that exited on its own and start another once its back-off has passed."""
        if self.worker is not None and self.worker.proc.poll() is not None:
            code = self.worker.stop()  # reaps it and releases its log
            self.exit_codes.append(code)
            self._log(f"the worker exited on its own with {code}; restarting it (log: {self.worker.log_path.name})")
            self.worker = None
            self._restart_at = time.monotonic() + min(2.0 * len(self.exit_codes), 10.0)
        if self.worker is None and self._restart_at is not None and time.monotonic() >= self._restart_at:
            self.start()

    def stop(self) -> None:
        """Stop the running worker gracefully (SIGTERM)."""
        if self.worker is not None:
            code = self.worker.stop()
            if code not in (0, -signal.SIGTERM):
                self.exit_codes.append(code)
            self.worker = None


@dataclass(frozen=True)
class ChaosBroker(BenchBroker):
    """The suite's own broker (deploy/local/kafka.sh on ports and a data directory of its own), which the
    broker scenario kills, pauses and restarts."""

    port: int = 29292
    controller_port: int = 29293
    data_dir: str = "var/kafka-chaos"
    # A restart after SIGKILL recovers every partition's log first: with the scenarios' topics at 24 partitions
    # each (several hundred in all) that took over kafka.sh's default minute on a busy machine.
    env: dict[str, str] = field(default_factory=lambda: {"KAFKA_START_TIMEOUT_S": "240"})

    def start(self) -> str:
        """Start it on its existing data (a restart); returns the bootstrap address once it serves."""
        return self._run("start").splitlines()[-1]

    def stop(self) -> None:
        """A clean shutdown (SIGTERM, SIGKILL after kafka.sh's timeout)."""
        self._run("stop")

    def pid(self) -> int:
        """The broker JVM's process id."""
        data_dir = Path(self.data_dir)
        return int(((data_dir if data_dir.is_absolute() else REPO_ROOT / data_dir) / "kafka.pid").read_text())

    def send_signal(self, signum: int) -> None:
        """Send a signal to the broker JVM (SIGKILL: a crash; SIGSTOP/SIGCONT: a pause)."""
        os.kill(self.pid(), signum)

    def kill9(self) -> None:
        """Crash the broker and wait until its process is gone."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


class DiskUnavailableError(RuntimeError):
    """A small disk could not be mounted here (not root, or no tmpfs); the disk scenario is reported as not run."""


@contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` mounted at ``path`` for the duration (needs root); raises
    :class:`DiskUnavailableError` when it cannot be mounted."""
    if os.geteuid() != 0:
        raise DiskUnavailableError("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise DiskUnavailableError(f"mount -t tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
            # Something still holds a file open (a worker that would not die): detach it anyway.
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill_disk(directory: Path) -> tuple[Path, int]:
    """Write a filler file in ``directory`` until the disk is full; returns it and its size in bytes."""
    filler = directory / "filler.bin"
    chunk = b"\0" * MiB
    written = 0
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                written += out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    # The last partial chunk: whatever bytes remain, so the disk is full to the byte.
    with filler.open("ab", buffering=0) as out:
        for size in (64 * 1024, 4096, 512, 1):
            while True:
                try:
                    written += out.write(b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler, written


def disk_free_bytes(path: Path) -> int:
    """Free bytes on the file system of ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
