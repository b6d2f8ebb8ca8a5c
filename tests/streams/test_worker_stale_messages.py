"""Messages of an earlier consumer generation or a revoked partition never reach the fold (no broker: the
worker's receive and release steps alone, with faust's message replaced by a plain record)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bench.fold_cost import untrained_runtime
from bench.load import EventEncoder, LoadSpec, build_schedule
from state.spec import StateSpec
from streams.settings import load_settings
from streams.worker import app as worker_app
from streams.worker.alignment import Held
from streams.worker.app import ProfileWorker
from streams.worker.continuity import Verdict
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import BatchOutput, BatchProcessor, Decoded

PARTITION = 1


def _worker(tmp_path: Path) -> ProfileWorker:
    settings = load_settings(state_dir=tmp_path / "state", topic_prefix="t.", metrics_port=0, partitions=4)
    metrics = WorkerMetrics(CollectorRegistry(), process_metrics=False)
    spec = StateSpec()
    runtime = untrained_runtime()
    worker = ProfileWorker(settings, runtime, metrics, spec, BatchProcessor(runtime, spec, metrics))
    worker._owned = {PARTITION}
    worker.app.consumer_generation_id = 5
    return worker


def _messages(worker: ProfileWorker, generation: int, count: int = 3) -> list[Any]:
    """Valid contract-v1 events as faust hands them over: topic, partition, offset, key, value, generation."""
    schedule = build_schedule(LoadSpec(users=2, events=count, seed=3))
    return [
        SimpleNamespace(
            topic=worker.settings.topic(f"events.{kind}"),
            partition=PARTITION,
            offset=10 + i,
            key=key,
            value=value,
            generation_id=generation,
        )
        for i, (kind, key, value) in enumerate(EventEncoder(schedule).messages())
    ]


def _generation(item: Decoded) -> int:
    generation: int = getattr(item.message.token, "generation_id")  # noqa: B009 (the token is typed Hashable)
    return generation


class _GapAfterEachMessage:
    """A continuity check that reports a confirmed hole before every message (so the worker awaits accept_gap)."""

    def expected(self, tp: tuple[str, int]) -> int:
        return 0

    def check(self, tp: tuple[str, int], offset: int, now_ms: int) -> Verdict:
        return Verdict.TAKE_AFTER_GAP


def test_a_slice_is_not_queued_when_its_partition_is_revoked_while_a_gap_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(tmp_path)
    worker.continuity = _GapAfterEachMessage()  # type: ignore[assignment]

    async def revoked_meanwhile(app: Any, topic: str, partition: int, first: int, last: int) -> None:
        # accept_gap yields to the event loop; a rebalance that takes the partition runs in that turn.
        worker._owned.discard(partition)

    monkeypatch.setattr(worker_app, "accept_gap", revoked_meanwhile)
    asyncio.run(worker._receive_slice(_messages(worker, generation=5), {}))
    # Queued, they would be folded ahead of their redelivery once the partition came back.
    assert worker.aligner.held == 0


def test_a_slice_of_the_current_generation_is_queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = _worker(tmp_path)
    worker.continuity = _GapAfterEachMessage()  # type: ignore[assignment]

    async def nothing_happens(app: Any, topic: str, partition: int, first: int, last: int) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(worker_app, "accept_gap", nothing_happens)
    asyncio.run(worker._receive_slice(_messages(worker, generation=5), {}))
    assert worker.aligner.held == 3


def test_a_released_message_fetched_before_the_last_rebalance_is_not_folded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(tmp_path)
    old, current = _messages(worker, generation=4, count=2), _messages(worker, generation=5, count=2)
    decoded = worker.processor.decode([worker._inbound(m) for m in old + current], BatchOutput())
    assert len(decoded) == 4
    released = [Held(d.message.topic, d.message.partition, d.message.offset, d.event.ts_ms, d) for d in decoded]
    monkeypatch.setattr(worker.aligner, "release", lambda *args: released)
    folded: list[list[Decoded]] = []

    async def fold(items: list[Decoded], output: Any, consumed: int) -> None:
        folded.append(items)

    async def publish(output: Any) -> None:
        return None

    monkeypatch.setattr(worker, "_fold", fold)
    monkeypatch.setattr(worker, "_publish", publish)
    monkeypatch.setattr(worker_app, "release", lambda app, tokens: list(tokens))
    asyncio.run(worker._process_released())
    # The partition is this worker's again, but the earlier generation's copies are delivered again from the
    # committed offset; folded now, their redelivery would look like duplicates.
    assert [[_generation(item) for item in unit] for unit in folded] == [[5, 5]]
