"""A busy worker does not take itself for cut off from the broker (no broker: the lag refresh's judgement alone,
with the consumer's fetch answers and assignment given).

aiokafka does not fetch a partition whose records wait to be taken, so while a worker works through a large poll
no input partition is fetched for seconds; the quiet partitions (erasure requests) are fetched on throughout.
Judged on the inputs alone, drains of two workers took a false outage and held caught-up partitions for the
settling time (half a minute)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from streams.worker import app as worker_app
from tests.streams.test_worker_stale_messages import PARTITION, _worker


def _judge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ages_s: dict[str, float]) -> bool:
    """Whether the worker finds the broker away after one lag refresh, given how long ago a fetch last answered
    for each topic's partition (topic name by its suffix)."""
    worker = _worker(tmp_path)
    now_ms = time.time() * 1000
    topics = {suffix: worker.settings.topic(suffix) for suffix in ages_s}
    answered = {name: now_ms - ages_s[suffix] * 1000 for suffix, name in topics.items()}
    assignment = {TP(name, PARTITION) for name in topics.values()}
    monkeypatch.setattr(worker.app.consumer, "assignment", lambda: assignment)
    monkeypatch.setattr(worker_app, "fetched_at_ms", lambda app, topic, partition: answered[topic])

    async def no_lag_refresh(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(worker.lag_monitor, "refresh", no_lag_refresh)
    asyncio.run(worker._refresh_lag())
    return worker.broker_absence.settling(time.time() * 1000)


def test_fresh_answers_for_a_quiet_partition_mean_the_broker_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs_waiting = {"events.browse": 8.0, "events.search": 8.0, "events.purchase": 8.0}
    assert not _judge(tmp_path, monkeypatch, {**inputs_waiting, "privacy.erasure": 0.1})


def test_no_answer_for_any_partition_is_an_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _judge(tmp_path, monkeypatch, {"events.browse": 8.0, "events.search": 8.0, "privacy.erasure": 8.0})
