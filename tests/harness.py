"""The tests' harness beside bench/procs.py: waiting with a clear failure, the profile log of a test, and the demo
events every pipeline test sends. Helpers live here, not in test modules."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.procs import REPO_ROOT, WorkerProcess, settings_env
from streams.client.producer import EventProducer
from streams.client.subscriber import ProfileSubscriber
from streams.contract.events import Event
from streams.contract.profile import ProfileUpdated
from streams.feedback.main import run_feedback
from streams.offline.demo import DemoTraffic
from streams.recommend.main import run_recommender
from streams.settings import Settings

__all__ = [
    "ProfileLog",
    "RecommenderThread",
    "WorkerProcess",
    "all_records",
    "demo_events",
    "expected_counts",
    "free_ports",
    "latest_values",
    "run_cli",
    "send_events",
    "wait_until",
    "worker_samples",
]


def free_ports(count: int) -> list[int]:
    """Ports the kernel has just handed out (all held at once, so they differ)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    poll_s: float = 0.2,
    workers: tuple[WorkerProcess, ...] = (),
    detail: Callable[[], object] | None = None,
) -> None:
    """Poll ``predicate`` until it holds; fail the test with ``what`` (and ``detail()``) when it does not within
    the timeout, or at once when one of ``workers`` has died. Either failure shows the end of the workers' logs:
    a wait that runs out on a slow machine must say what the worker was doing."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for worker in workers:
            if not worker.alive():
                pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail(4000)}")
        time.sleep(poll_s)
    extra = f": {detail()}" if detail is not None else ""
    logs = "".join(f"\n--- the end of {w.log_path.name} ---\n{w.log_tail(4000)}" for w in workers)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}{extra}{logs}")


def worker_samples(settings: Settings) -> list[Sample]:
    """Every sample of the worker's /metrics; empty while the worker is not serving it yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return []
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def run_cli(settings: Settings, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    """``profilestream ARGS`` in a child process that reads exactly ``settings``; output captured, never raises."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "--cli-log-level", "warning", *args],
        env=settings_env(settings),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def demo_events(users: int, count: int, seed: int) -> list[Event]:
    traffic = DemoTraffic(users, seed=seed)
    return list(traffic.events(count))


def send_events(settings: Settings, events: list[Event]) -> None:
    with EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as producer:
        for event in events:
            producer.send(event)
        producer.flush()


class ProfileLog:
    """Every profile update seen, per user, in arrival order."""

    def __init__(self, settings: Settings) -> None:
        # Every record as published, none skipped as superseded: the tests judge what the worker publishes.
        self.subscriber = ProfileSubscriber(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix, hold=False)
        self.updates: dict[str, list[ProfileUpdated]] = defaultdict(list)
        self.last_mismatches: dict[str, tuple[int, int] | None] = {}

    def drain(self) -> None:
        for change in self.subscriber.poll(timeout_ms=200):
            assert isinstance(change, ProfileUpdated)
            self.updates[change.user_id].append(change)

    def count(self) -> int:
        """Updates seen so far, after reading what arrived."""
        self.drain()
        return sum(map(len, self.updates.values()))

    def mismatches(self, expected: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int] | None]:
        """Users whose latest update lacks the expected (event_count, last_event_ts): what they have instead."""
        latest = {user: (u[-1].event_count, u[-1].last_event_ts_ms) for user, u in self.updates.items() if u}
        return {user: latest.get(user) for user, want in expected.items() if latest.get(user) != want}

    def behind(self, shown: int = 5) -> str:
        """What the last :meth:`caught_up` missed, for a failed wait: how many users lack their expected profile,
        what the first few have instead, and how many profile messages the log has not read (a worker that did
        not publish and a reader that stalled look alike otherwise)."""
        first = ", ".join(f"{user}: {have}" for user, have in list(self.last_mismatches.items())[:shown])
        return f"{len(self.last_mismatches)} users behind ({first}); {self.subscriber.lag()} profile messages unread"

    def wait_caught_up(
        self,
        expected: dict[str, tuple[int, int]],
        timeout_s: float,
        what: str,
        workers: tuple[WorkerProcess, ...] = (),
    ) -> None:
        """:func:`wait_until` every user's latest update has the expected (event_count, last_event_ts); a
        failure says who is behind and whether the profiles were published but not read."""
        wait_until(lambda: self.caught_up(expected), timeout_s, what, workers=workers, detail=self.behind)

    def caught_up(self, expected: dict[str, tuple[int, int]]) -> bool:
        """True when every user's latest update has the expected (event_count, last_event_ts)."""
        self.drain()
        self.last_mismatches = self.mismatches(expected)
        return not self.last_mismatches


def expected_counts(events: list[Event]) -> dict[str, tuple[int, int]]:
    counts: dict[str, int] = defaultdict(int)
    newest: dict[str, int] = {}
    for event in events:
        counts[event.user_id] += 1
        newest[event.user_id] = max(newest.get(event.user_id, 0), event.ts_ms)
    return {user: (counts[user], newest[user]) for user in counts}


def latest_values(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[bytes, bytes | None]:
    """Every key's latest value in ``topic`` (a compacted topic as a consumer restoring from it sees it)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        latest: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out reading {topic} to its end")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    latest[record.key] = record.value
        return latest
    finally:
        consumer.close()


def all_records(
    bootstrap: str, topic: str, timeout_s: float = 30.0
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """Every record ``topic`` still holds, read from the start: (key, value, headers)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out reading {topic} to its end")
            for records in consumer.poll(timeout_ms=500).values():
                found.extend((r.key, r.value, list(r.headers or [])) for r in records)
        return found
    finally:
        consumer.close()


class RecommenderThread:
    """``profilestream recommend`` run in a thread of the test process (its start-up, HTTP and follower as the
    command runs them), asked over HTTP like any client."""

    def __init__(self, settings: Settings) -> None:
        self.base = f"http://{settings.recommend_bind}:{settings.recommend_port}"
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(settings,), name="recommender", daemon=True)
        self._thread.start()

    def _run(self, settings: Settings) -> None:
        try:
            run_recommender(settings, self._stop)
        except BaseException as exc:
            self.error = exc
            raise

    def get(self, path: str) -> tuple[int, Any]:
        """Status and JSON body of ``GET path``."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def ready(self) -> bool:
        """True once start-up has read the topics and the server answers; fails the test if the thread died."""
        if self.error is not None:
            pytest.fail(f"the recommender failed: {self.error!r}")
        try:
            return self.get("/healthz")[0] == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def metrics(self) -> str:
        """The /metrics text."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as answer:
            return str(answer.read().decode())

    def stop(self) -> None:
        """Stop serving and following, and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            pytest.fail("the recommender did not stop within 60 s")


class FeedbackThread:
    """``profilestream feedback`` run in a thread of the test process; its metrics read from its registry."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(settings,), name="feedback", daemon=True)
        self._thread.start()

    def _run(self, settings: Settings) -> None:
        try:
            run_feedback(settings, self._stop, self.registry)
        except BaseException as exc:
            self.error = exc
            raise

    def value(self, name: str, **labels: str) -> float:
        """A sample of ``profilestream_feedback_<name>`` (0 while it does not exist); fails if the thread died."""
        if self.error is not None:
            pytest.fail(f"the feedback consumer failed: {self.error!r}")
        return self.registry.get_sample_value(f"profilestream_feedback_{name}", labels) or 0.0

    def stop(self) -> None:
        """Stop counting, commit, leave the group and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            pytest.fail("the feedback consumer did not stop within 60 s")
