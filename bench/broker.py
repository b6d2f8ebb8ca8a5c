"""The benchmark's own local broker: deploy/local/kafka.sh on ports and a data directory of its own.

Other ports than the tests (19092) and ``make run`` (9092), so the benchmark never meets their brokers. Each
suite starts from an empty broker and deletes its data at the end (a full suite writes gigabytes).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from bench.procs import REPO_ROOT

KAFKA_SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka.sh"


@dataclass(frozen=True)
class BenchBroker:
    """kafka.sh with the benchmark's ports and data directory."""

    port: int = 29092
    controller_port: int = 29093
    data_dir: str = "var/kafka-bench"
    env: dict[str, str] = field(default_factory=dict)

    def _run(self, command: str) -> str:
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DATA_DIR": self.data_dir,
            **self.env,
        }
        done = subprocess.run(
            ["bash", str(KAFKA_SCRIPT), command], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout.strip()

    def start_fresh(self) -> str:
        """Wipe any previous benchmark broker, start an empty one; returns its bootstrap address."""
        self._run("wipe")
        return self._run("start").splitlines()[-1]

    def stop_and_wipe(self) -> None:
        """Stop the broker and delete its data."""
        self._run("wipe")
