"""A real Prometheus server scrapes a real worker on the real broker, then sees the worker-down alert."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.procs import free_port
from streams.settings import Settings
from tests.conftest import REPO_ROOT
from tests.harness import ProfileLog, WorkerProcess, demo_events, expected_counts, send_events, wait_until

pytestmark = pytest.mark.kafka
RULES_DIR = REPO_ROOT / "deploy" / "prometheus" / "rules"


class Prometheus:
    """A Prometheus server on loopback with the project's rules, scraping one target every second."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("the prometheus server is missing: `make promtool` installs Debian's prometheus package")
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        rule_files = "\n".join(f"  - {path}" for path in sorted(RULES_DIR.glob("*.yml")))
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n{rule_files}\n"
            "scrape_configs:\n  - job_name: profilestream\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self._log = (tmp_path / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> object:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        return body["data"]

    def value(self, query: str) -> float | None:
        """The value of an instant query that returns one series, or None while it returns none."""
        data = self.api("query", query=query)
        assert isinstance(data, dict)
        result = data["result"]
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def prometheus(tmp_path: Path, metrics_port: int) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path, f"127.0.0.1:{metrics_port}")
    try:
        wait_until(server.ready, 60, "Prometheus to be ready")
        yield server
    finally:
        server.stop()


def test_prometheus_scrapes_a_worker_and_alerts_when_it_goes_down(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    prometheus: Prometheus,
    metrics_port: int,
) -> None:
    settings = make_settings(metrics_port=metrics_port)
    worker = start_worker(settings)
    events = demo_events(users=50, count=600, seed=31)
    log = ProfileLog(settings)
    send_events(settings, events)
    log.wait_caught_up(expected_counts(events), 90, "the worker to fold every event", workers=(worker,))

    def scraped(query: str, want: float) -> Callable[[], bool]:
        return lambda: (prometheus.value(query) or 0) >= want

    wait_until(scraped('up{job="profilestream"}', 1), 30, "the worker target to be up")
    # The metrics server answers from its own thread, so a scrape can land mid-batch: wait for the last one.
    wait_until(scraped("profilestream_end_to_end_latency_seconds_count", len(events)), 30, "every event's latency")
    assert prometheus.value("sum(profilestream_events_consumed_total)") == len(events)
    assert prometheus.value("sum(profilestream_events_rejected_total)") == 0
    published = prometheus.value("profilestream_profiles_published_total")
    assert published is not None and len(expected_counts(events)) <= published <= len(events)
    assert prometheus.value("profilestream_end_to_end_latency_seconds_count") == len(events)
    assert (prometheus.value("profilestream_batch_size_events_sum") or 0) == len(events)
    assert prometheus.value("count(profilestream_model_info)") == 1
    assert (prometheus.value("process_resident_memory_bytes") or 0) > 10_000_000
    wait_until(scraped("count(profilestream_consumer_lag_messages)", 1), 30, "lag series for the partitions")
    wait_until(lambda: prometheus.value("max(profilestream_consumer_lag_messages)") == 0, 30, "lag back to zero")

    assert worker.stop() == 0

    def worker_down_alert() -> bool:
        data = prometheus.api("alerts")
        assert isinstance(data, dict)
        return any(
            a["labels"]["alertname"] == "ProfilestreamWorkerDown" and a["state"] in {"pending", "firing"}
            for a in data["alerts"]
        )

    wait_until(worker_down_alert, 30, "the worker-down alert to become active")
