"""Worker processes under test, started as the operator would, and what the kernel says about them: the one
process harness of the tests and the benchmarks."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import SecretStr

from streams.settings import ENV_PREFIX, Settings

REPO_ROOT: Final = Path(__file__).resolve().parents[1]

Variant = Literal["profilestream", "naive", "quix", "floor", "limit", "baseline"]
VARIANTS: Final[tuple[Variant, ...]] = ("profilestream", "naive", "quix")
"""The variants of the side-by-side; the floor runs in the throughput section."""

COMMANDS: Final[dict[Variant, list[str]]] = {
    # (a) the worker as shipped, through its CLI.
    "profilestream": ["-m", "streams.cli", "worker"],
    # (b) the same worker with the bench-only naive processor injected.
    "naive": ["-m", "bench.naive_worker"],
    # (c) the same job written on Quix Streams.
    "quix": ["-m", "bench.peers.quix_profiles"],
    # The same worker app with only decoding and publishing: the framework's floor.
    "floor": ["-m", "bench.floor_worker"],
    # No framework: a bare aiokafka consume-decode-produce loop, the limit of one Python process.
    "limit": ["-m", "bench.python_limit"],
    # The worker as shipped at an earlier commit (python -m bench --baseline REV), run from a checkout of it.
    "baseline": ["-m", "streams.cli", "worker"],
}

_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


_PORT_RANGE: Final = (20_000, 32_000)
"""Where :func:`free_port` looks: below Linux's ephemeral range (32768-60999), from which the kernel picks the
local port of every outgoing connection. A port the kernel handed out by ``bind(0)`` could be taken by a Kafka
client's connection before the worker binds it (seen in the two-worker test)."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, outside the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(*_PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORT_RANGE}")


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process read exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for name, value in settings.model_dump().items():
        # str() of a secret type is its mask; the child needs the secret itself.
        shown = value.get_secret_value() if isinstance(value, SecretStr) else value
        if shown is not None:
            env[f"{ENV_PREFIX}{name.upper()}"] = str(shown)
    env.update(extra)
    return env


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far (all of its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5) (utime, stime) are at 11 and 12 once "pid (comm)" is cut off.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


@dataclass
class WorkerProcess:
    """One worker child process, its log in a file."""

    variant: Variant
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the worker's log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        """What the worker wrote so far."""
        return self.log_tail(chars=10**9)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush or commit."""
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, then SIGKILL when it does not stop in time (the caller then sees -9); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_worker(variant: Variant, settings: Settings, log_path: Path, **env: str) -> WorkerProcess:
    """Start a worker of ``variant`` reading ``settings`` from its environment (``env`` adds variables)."""
    return start_worker_from(None, variant, settings, log_path, env)


def start_worker_from(
    checkout: Path | None, variant: Variant, settings: Settings, log_path: Path, env: dict[str, str] | None = None
) -> WorkerProcess:
    """:func:`start_worker` from ``checkout`` (another commit's tree), or from this tree when it is None."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(env or {})
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, *COMMANDS[variant]],
            env=settings_env(settings, **env),
            cwd=checkout or REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(variant, proc, log_path)
