"""LagMonitor without a broker: a scripted end-offset source, a fresh registry per test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from streams.worker.lag_monitor import LagMonitor, Partition
from streams.worker.metrics import WorkerMetrics

BROWSE0: Partition = ("events.browse", 0)
BROWSE1: Partition = ("events.browse", 1)
SEARCH0: Partition = ("events.search", 0)


class ScriptedSource:
    """End offsets set by the test; `down` makes every call fail like an unreachable broker."""

    def __init__(self) -> None:
        self.ends: dict[Partition, int] = {}
        self.down = False
        self.hang = False
        self.starts = 0
        self.stops = 0
        self.probes = 0
        self.requests: list[list[Partition]] = []

    async def _call(self) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        if self.down:
            raise ConnectionRefusedError("broker down")

    async def start(self) -> None:
        self.starts += 1
        await self._call()

    async def end_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        self.requests.append(list(partitions))
        await self._call()
        return {tp: self.ends[tp] for tp in partitions}

    async def probe(self) -> None:
        self.probes += 1
        await self._call()

    async def stop(self) -> None:
        self.stops += 1


class Positions:
    """The worker's fallback for partitions it has processed nothing of."""

    def __init__(self) -> None:
        self.values: dict[Partition, int | None] = {}
        self.calls: list[Partition] = []

    async def __call__(self, tp: Partition) -> int | None:
        self.calls.append(tp)
        return self.values.get(tp)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> WorkerMetrics:
    return WorkerMetrics(registry, process_metrics=False)


@pytest.fixture
def source() -> ScriptedSource:
    return ScriptedSource()


@pytest.fixture
def positions() -> Positions:
    return Positions()


@pytest.fixture
def monitor(metrics: WorkerMetrics, source: ScriptedSource, positions: Positions) -> LagMonitor:
    return LagMonitor("unused:9092", metrics, positions, source=source, timeout_s=0.2)


def lag(registry: CollectorRegistry, tp: Partition) -> float | None:
    return registry.get_sample_value("profilestream_consumer_lag_messages", {"topic": tp[0], "partition": str(tp[1])})


def broker_up(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("profilestream_broker_up")


def unreachable(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("profilestream_broker_unreachable_total")


def test_lag_is_end_offset_minus_next_offset_to_process(
    registry: CollectorRegistry, monitor: LagMonitor, source: ScriptedSource
) -> None:
    source.ends = {BROWSE0: 100, BROWSE1: 7}
    # Last processed offsets: 89 on partition 0 (next is 90: 10 waiting), 6 on partition 1 (caught up).
    asyncio.run(monitor.refresh([BROWSE0, BROWSE1], {BROWSE0: 89, BROWSE1: 6}))
    assert lag(registry, BROWSE0) == 10
    assert lag(registry, BROWSE1) == 0
    offset = "profilestream_consumed_offset"
    assert registry.get_sample_value(offset, {"topic": "events.browse", "partition": "0"}) == 89
    assert broker_up(registry) == 1
    assert monitor.broker_reachable is True
    assert source.requests == [[BROWSE0, BROWSE1]]


def test_partitions_without_processed_offset_use_the_fallback(
    registry: CollectorRegistry, monitor: LagMonitor, source: ScriptedSource, positions: Positions
) -> None:
    source.ends = {BROWSE0: 50, SEARCH0: 30}
    positions.values = {BROWSE0: 20}  # SEARCH0: position not known yet
    asyncio.run(monitor.refresh([BROWSE0, SEARCH0], {}))
    assert lag(registry, BROWSE0) == 30
    assert lag(registry, SEARCH0) is None  # nothing to subtract from: no series rather than a made-up one
    assert sorted(positions.calls) == [BROWSE0, SEARCH0]


def test_a_fallback_that_hangs_or_fails_costs_only_its_partition(
    registry: CollectorRegistry, metrics: WorkerMetrics, source: ScriptedSource
) -> None:
    async def stuck(tp: Partition) -> int | None:
        if tp == BROWSE1:
            raise RuntimeError("no position")
        await asyncio.sleep(3600)
        return None

    source.ends = {BROWSE0: 50, BROWSE1: 9, SEARCH0: 4}
    monitor = LagMonitor("unused:9092", metrics, stuck, source=source, timeout_s=0.2)
    asyncio.run(asyncio.wait_for(monitor.refresh([BROWSE0, BROWSE1, SEARCH0], {SEARCH0: 1}), 5))
    assert lag(registry, SEARCH0) == 2
    assert lag(registry, BROWSE0) is None
    assert lag(registry, BROWSE1) is None
    assert broker_up(registry) == 1


def test_an_outage_holds_the_lag_and_reports_the_broker_down(
    registry: CollectorRegistry, monitor: LagMonitor, source: ScriptedSource, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        source.ends = {BROWSE0: 100}
        await monitor.refresh([BROWSE0], {BROWSE0: 79})
        assert lag(registry, BROWSE0) == 20
        source.down = True
        # The worker drains what it had fetched before the outage: its processed offset moves on.
        await monitor.refresh([BROWSE0], {BROWSE0: 89})
        assert lag(registry, BROWSE0) == 20  # held, not lowered to 10 (nor to 0 once drained)
        await monitor.refresh([BROWSE0], {BROWSE0: 99})
        assert lag(registry, BROWSE0) == 20
        assert broker_up(registry) == 0
        assert unreachable(registry) == 2
        assert monitor.broker_reachable is False
        assert monitor.end_offsets == {BROWSE0: 100}  # the last end offsets are kept
        # Back: the true lag at once, whether lower or higher than the held one.
        source.down = False
        source.ends = {BROWSE0: 130}
        await monitor.refresh([BROWSE0], {BROWSE0: 99})
        assert lag(registry, BROWSE0) == 30
        assert broker_up(registry) == 1
        assert unreachable(registry) == 2

    with caplog.at_level(logging.DEBUG, logger="streams.worker.lag_monitor"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, not once per refresh
    assert "ConnectionRefusedError: broker down" in warnings[0].getMessage()
    assert any("answers again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_lag_can_rise_during_an_outage_but_never_falls(
    registry: CollectorRegistry, monitor: LagMonitor, source: ScriptedSource, positions: Positions
) -> None:
    async def scenario() -> None:
        source.ends = {BROWSE0: 100}
        positions.values = {BROWSE0: 90}
        await monitor.refresh([BROWSE0], {})
        assert lag(registry, BROWSE0) == 10
        source.down = True
        # The fallback position moved back (a reset to the committed offset): more is waiting than before.
        positions.values = {BROWSE0: 60}
        await monitor.refresh([BROWSE0], {})
        assert lag(registry, BROWSE0) == 40

    asyncio.run(scenario())


def test_a_request_that_hangs_times_out_as_unreachable(
    registry: CollectorRegistry, monitor: LagMonitor, source: ScriptedSource
) -> None:
    async def scenario() -> None:
        source.ends = {BROWSE0: 10}
        await monitor.refresh([BROWSE0], {BROWSE0: 4})
        source.hang = True
        await asyncio.wait_for(monitor.refresh([BROWSE0], {BROWSE0: 4}), 5)

    asyncio.run(scenario())
    assert broker_up(registry) == 0
    assert unreachable(registry) == 1
    assert lag(registry, BROWSE0) == 5


def test_the_client_is_rebuilt_after_a_failure(monitor: LagMonitor, source: ScriptedSource) -> None:
    async def scenario() -> None:
        source.ends = {BROWSE0: 10}
        await monitor.start()
        await monitor.refresh([BROWSE0], {})
        source.down = True
        await monitor.refresh([BROWSE0], {})
        await monitor.refresh([BROWSE0], {})
        source.down = False
        await monitor.refresh([BROWSE0], {})
        await monitor.stop()

    asyncio.run(scenario())
    # start, then (after the first failure closed it) one attempt per refresh until the broker answers again.
    assert source.starts == 3
    assert source.stops == 2


def test_start_does_not_raise_when_the_broker_is_down(
    registry: CollectorRegistry, monitor: LagMonitor, source: ScriptedSource
) -> None:
    source.down = True
    asyncio.run(monitor.start())
    assert broker_up(registry) == 0
    assert unreachable(registry) == 1


def test_without_assigned_partitions_the_broker_is_probed(
    registry: CollectorRegistry, monitor: LagMonitor, source: ScriptedSource
) -> None:
    async def scenario() -> None:
        source.down = True
        await monitor.refresh([], {})
        assert broker_up(registry) == 0
        source.down = False
        await monitor.refresh([], {})

    asyncio.run(scenario())
    assert broker_up(registry) == 1
    assert source.requests == []
    assert source.probes == 1


def test_revoked_partitions_are_forgotten(
    registry: CollectorRegistry, metrics: WorkerMetrics, monitor: LagMonitor, source: ScriptedSource
) -> None:
    async def scenario() -> None:
        source.ends = {BROWSE0: 10, BROWSE1: 20}
        await monitor.refresh([BROWSE0, BROWSE1], {BROWSE0: 4, BROWSE1: 4})
        monitor.retain([BROWSE0])
        metrics.retain_partitions([BROWSE0])

    asyncio.run(scenario())
    assert monitor.end_offsets == {BROWSE0: 10}
    assert monitor.lag == {BROWSE0: 5}
    assert lag(registry, BROWSE1) is None


def test_a_refresh_that_spans_a_rebalance_does_not_bring_back_revoked_series(
    registry: CollectorRegistry, metrics: WorkerMetrics, source: ScriptedSource
) -> None:
    release = asyncio.Event()

    async def slow_position(tp: Partition) -> int | None:
        await release.wait()
        return 0

    monitor = LagMonitor("unused:9092", metrics, slow_position, source=source, timeout_s=2)

    async def scenario() -> None:
        source.ends = {BROWSE1: 20}
        refresh = asyncio.create_task(monitor.refresh([BROWSE1], {}))
        await asyncio.sleep(0.05)
        # The partition is revoked while the refresh waits for its position.
        monitor.retain([])
        metrics.retain_partitions([])
        release.set()
        await refresh

    asyncio.run(scenario())
    assert lag(registry, BROWSE1) is None
    assert monitor.lag == {}


def test_an_idle_worker_counts_offsets_that_hold_no_event_as_done(
    registry: CollectorRegistry, monitor: LagMonitor, source: ScriptedSource, positions: Positions
) -> None:
    # The last record of the partition is a transaction's commit marker at offset 7: the worker processed
    # offset 6, the consumer's position is 8, the end offset 8.
    source.ends = {BROWSE0: 8}
    positions.values = {BROWSE0: 8}
    asyncio.run(monitor.refresh([BROWSE0], {BROWSE0: 6}))
    assert lag(registry, BROWSE0) == 1  # busy: the processed offset is what counts (the position may run ahead)
    asyncio.run(monitor.refresh([BROWSE0], {BROWSE0: 6}, idle=True))
    assert lag(registry, BROWSE0) == 0
    offset = "profilestream_consumed_offset"
    assert registry.get_sample_value(offset, {"topic": "events.browse", "partition": "0"}) == 6
