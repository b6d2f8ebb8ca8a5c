"""The command line against the real broker: topic creation, reading profiles, and the state tools."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from streams.client.admin import TopicsMismatchError, create_topics
from streams.settings import Settings
from tests.harness import ProfileLog, WorkerProcess, demo_events, expected_counts, run_cli, send_events

pytestmark = pytest.mark.kafka


def test_topics_create_is_idempotent_and_refuses_a_partition_mismatch(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()  # creates the topics once
    done = run_cli(settings, "topics", "create")
    assert done.returncode == 0, done.stderr
    # Three inputs, dead letters, erasure, profiles, the state changelog, model items, impressions.
    assert done.stdout.count(": exists") == 9
    with pytest.raises(TopicsMismatchError, match="partitions"):
        create_topics(settings.model_copy(update={"partitions": settings.partitions + 1}))
    # The command says so in one line (it was a traceback and exit 1).
    refused = run_cli(settings.model_copy(update={"partitions": settings.partitions + 1}), "topics", "create")
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("profilestream topics create: topic"), refused.stderr


def test_tail_and_state_tools_while_the_worker_runs(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    events = demo_events(users=30, count=300, seed=51)
    expected = expected_counts(events)
    log = ProfileLog(settings)
    send_events(settings, events)
    log.wait_caught_up(expected, 90, "every user's profile", workers=(worker,))

    tail = run_cli(settings, "profiles", "tail", "--from-beginning", "--max", "5")
    assert tail.returncode == 0, tail.stderr
    printed = [json.loads(line) for line in tail.stdout.splitlines()]
    assert len(printed) == 5 and all(p["schema"] == 1 and p["user_id"] in expected for p in printed)

    # The state tools open the worker's RocksDB read-only while the worker keeps running.
    stats = run_cli(settings, "state", "stats", "--check")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["users"] == len(expected)
    user = sorted(expected)[0]
    inspect = run_cli(settings, "state", "inspect", user)
    assert inspect.returncode == 0, inspect.stderr
    record = json.loads(inspect.stdout)
    assert (record["event_count"], record["last_event_ms"]) == expected[user]
    assert run_cli(settings, "state", "inspect", "nobody").returncode == 1
    assert worker.proc.poll() is None
