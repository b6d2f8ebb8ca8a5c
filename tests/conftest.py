"""Shared fixtures: the real local Kafka broker for the session, fresh topics and worker processes per test."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.procs import WorkerProcess, free_port
from bench.procs import start_worker as start_worker_process
from streams.client.admin import create_topics
from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka.sh"
# Tests run their own broker on other ports and another data directory than `make run`.
TEST_KAFKA_ENV = {
    "KAFKA_PORT": os.environ.get("TEST_KAFKA_PORT", "19092"),
    "KAFKA_CONTROLLER_PORT": os.environ.get("TEST_KAFKA_CONTROLLER_PORT", "19093"),
    "KAFKA_DATA_DIR": os.environ.get("TEST_KAFKA_DATA_DIR", "var/kafka-test"),
}


def _kafka(command: str) -> str:
    env = {**os.environ, **TEST_KAFKA_ENV}
    done = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0 and command != "status":
        raise RuntimeError(f"kafka.sh {command} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout.strip()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that reaches the broker is marked ``kafka``: ``make test-unit`` (``-m "not kafka"``) relies on it."""
    unmarked = [
        item.nodeid
        for item in items
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()) and item.get_closest_marker("kafka") is None
    ]
    if unmarked:
        raise pytest.UsageError("tests that use the broker must be marked kafka: " + ", ".join(unmarked))


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Start a fresh local broker for this test session; stop it at the end."""
    _kafka("wipe")
    bootstrap = _kafka("start").splitlines()[-1]
    try:
        yield bootstrap
    finally:
        _kafka("stop")


@pytest.fixture
def make_settings(kafka_bootstrap: str, tmp_path: Path) -> Callable[..., Settings]:
    """A factory of settings with a fresh topic prefix and app id, topics created."""
    run = uuid.uuid4().hex[:8]

    def factory(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_bootstrap": kafka_bootstrap,
            "topic_prefix": f"t{run}.",
            "app_id": f"ps-test-{run}",
            "state_dir": tmp_path / "state",
            "partitions": 4,
            "metrics_port": 0,
            "web_port": free_port(),
            "model_failure_linger_s": 0.0,
            # A killed worker's partitions move after this; production keeps the default of 60 s.
            "consumer_session_timeout_s": 10.0,
        }
        values.update(overrides)
        settings = Settings(**values)  # type: ignore[arg-type]
        create_topics(settings)
        return settings

    return factory


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """A factory of worker processes; every one still running at the end of the test is stopped."""
    started: list[WorkerProcess] = []

    def factory(settings: Settings, name: str = "worker", **env: str) -> WorkerProcess:
        worker = start_worker_process("profilestream", settings, tmp_path / f"{name}-{len(started)}.log", **env)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        if worker.alive():
            worker.stop()
