"""Consumer lag measured against the broker's end offsets, asked for on every refresh.

The Faust consumer knows a partition's high watermark only from its last fetch response. When the broker
cannot be reached no fetch returns: the worker drains what it had buffered and a lag computed from that
cached watermark falls to 0, so the outage looks like a worker that has caught up. :class:`LagMonitor`
instead sends a ListOffsets request (latest) for the assigned input partitions on every refresh, through a
small aiokafka consumer of its own that has no group and fetches no records, and bounds the request with a
timeout.

When the request fails or times out, `profilestream_broker_up` goes to 0, the failure is counted in
`profilestream_broker_unreachable_total`, and the lag is computed from the last end offsets that were
received. While the broker stays unreachable a partition's lag **holds its last value** (it is never
lowered: a smaller figure measured against stale end offsets is no evidence that the backlog shrank; it
can still rise). The first successful request sets the true value again and `broker_up` back to 1.

No Faust import: the worker hands over the partitions it owns, the offsets it has processed and a callable
for the partitions it has not processed anything of yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from streams.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

Partition = tuple[str, int]
"""(topic, partition number)."""

NextOffset = Callable[[Partition], Awaitable[int | None]]
"""The next offset the worker will process on a partition it has processed nothing of yet (its committed
offset or its consumer position), or None when it is not known."""

DEFAULT_TIMEOUT_S: Final = 3.0
"""Budget of one refresh (connecting included); below the worker's 5 s lag timer so refreshes do not pile up."""

DEFAULT_CLIENT_ID: Final = "profilestream-lag-monitor"

CLOSE_TIMEOUT_S: Final = 1.0
"""Closing the client sends nothing to the broker; this only bounds a close that hangs anyway."""


class EndOffsetSource(Protocol):
    """Where the end offsets come from: the broker (:class:`KafkaEndOffsets`) or a test double."""

    async def start(self) -> None:
        """Connect; raise when the broker cannot be reached."""

    async def end_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """The offset the next record of each partition will get; raise when the broker cannot answer."""

    async def probe(self) -> None:
        """One request to the broker (used when no partition is assigned); raise when it fails."""

    async def stop(self) -> None:
        """Close connections; safe to call when not started."""


class KafkaEndOffsets:
    """End offsets from a ListOffsets request, through an aiokafka consumer that joins no group.

    It never subscribes, fetches or commits, so it cannot take part in the worker's rebalances, and its
    requests are independent of the Faust consumer's fetch loop.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        request_timeout_s: float = DEFAULT_TIMEOUT_S,
        client_id: str = DEFAULT_CLIENT_ID,
        isolation_level: str = "read_uncommitted",
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        # TLS and SASL options of a secured cluster (streams.client.security).
        self.client_options = dict(client_options or {})
        self.request_timeout_s = request_timeout_s
        self.client_id = client_id
        self.isolation_level = isolation_level
        self._consumer: Any = None

    async def start(self) -> None:
        # aiokafka binds a consumer to the running loop when it is built, so it is built here, not in __init__.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=max(1, int(self.request_timeout_s * 1000)),
            isolation_level=self.isolation_level,
            **self.client_options,
        )
        try:
            await consumer.start()
        except BaseException:
            # A failed bootstrap leaves open sockets and tasks behind; close them before reporting.
            await _close_quietly(consumer)
            raise
        self._consumer = consumer

    async def end_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        offsets = await self._started().end_offsets([TopicPartition(topic, p) for topic, p in partitions])
        return {(tp.topic, tp.partition): int(offset) for tp, offset in offsets.items()}

    async def probe(self) -> None:
        # A metadata request: the cheapest public call that must reach a broker.
        await self._started().topics()

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await _close_quietly(consumer)

    def _started(self) -> Any:
        if self._consumer is None:
            raise RuntimeError("KafkaEndOffsets is not started")
        return self._consumer


async def _close_quietly(consumer: Any) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await consumer.stop()
    except Exception as exc:  # closing is best effort: the outage that got us here may still be on
        log.debug("closing the end-offset client failed: %r", exc)


class LagMonitor:
    """Sets the lag, consumed-offset and broker-reachability metrics of a worker on every :meth:`refresh`.

    Call :meth:`start` once the event loop runs, :meth:`refresh` from the lag timer, :meth:`retain` after
    every rebalance and :meth:`stop` at shutdown. None of them raises because Kafka is unreachable.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        metrics: WorkerMetrics,
        next_offset: NextOffset,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client_id: str = DEFAULT_CLIENT_ID,
        isolation_level: str = "read_uncommitted",
        source: EndOffsetSource | None = None,
        clock: Callable[[], float] = time.monotonic,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.metrics = metrics
        self.timeout_s = timeout_s
        self._next_offset = next_offset
        self._source: EndOffsetSource = source or KafkaEndOffsets(
            bootstrap_servers,
            request_timeout_s=timeout_s,
            client_id=client_id,
            isolation_level=isolation_level,
            client_options=client_options,
        )
        self._clock = clock
        self._connected = False
        self._reachable: bool | None = None
        self._unreachable_since: float | None = None
        self._end_offsets: dict[Partition, int] = {}
        self._lag: dict[Partition, int] = {}
        # Bumped by retain(): a refresh that spans a rebalance must not re-create a revoked partition's series.
        self._generation = 0
        self._lock = asyncio.Lock()

    @property
    def broker_reachable(self) -> bool | None:
        """Whether the last request reached the broker; None before the first one."""
        return self._reachable

    @property
    def end_offsets(self) -> Mapping[Partition, int]:
        """The last end offsets received, per assigned partition."""
        return dict(self._end_offsets)

    @property
    def lag(self) -> Mapping[Partition, int]:
        """The lag last reported, per assigned partition."""
        return dict(self._lag)

    async def fresh_end_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int] | None:
        """The end offsets of ``partitions`` asked of the broker now (not the last refresh's), or None when it
        did not answer in time."""
        async with self._lock:
            return await self._request(partitions)

    async def start(self) -> None:
        """Connect to the broker; an unreachable broker is reported (broker_up 0), not raised."""
        async with self._lock:
            await self._request(())

    async def stop(self) -> None:
        """Close the connection to the broker (a later refresh would connect again)."""
        async with self._lock:
            await self._disconnect()

    def retain(self, assigned: Iterable[Partition]) -> None:
        """Forget partitions no longer assigned (call after each rebalance, with the new assignment)."""
        keep = set(assigned)
        self._generation += 1
        for held in (self._end_offsets, self._lag):
            for tp in held.keys() - keep:
                del held[tp]

    async def refresh(
        self, assigned: Iterable[Partition], processed: Mapping[Partition, int], *, idle: bool = False
    ) -> None:
        """Measure the lag of `assigned` against the broker's end offsets and set the metrics.

        `processed` maps a partition to the last offset the worker processed on it; the next offset to
        process is one more. Partitions without one get theirs from the `next_offset` callable. With `idle`
        (nothing the consumer fetched waits to be processed) every partition's next offset is at least that
        callable's answer too: the consumer's position moves past offsets that hold no event (a transaction's
        commit marker), which processed offsets never reach, and a lag of one would otherwise stay for good.
        Takes at most about `timeout_s`: the end offsets and the fallbacks are asked for at the same time.
        """
        partitions = sorted(set(assigned))
        # A snapshot: the fold agent goes on updating `processed` while the requests are out.
        done = {tp: processed[tp] for tp in partitions if tp in processed}
        asked = partitions if idle else [tp for tp in partitions if tp not in done]
        async with self._lock:
            generation = self._generation
            ends, nexts = await asyncio.gather(self._request(partitions), self._fallbacks(asked))
            if generation != self._generation:
                log.debug("a rebalance happened during the lag refresh; its figures are dropped")
                return
            if ends is not None:
                self._end_offsets.update(ends)
            for tp in partitions:
                if tp in done:
                    self.metrics.set_consumed_offset(tp[0], tp[1], done[tp])
                    nexts[tp] = max(done[tp] + 1, nexts.get(tp, 0))
                end, next_offset = self._end_offsets.get(tp), nexts.get(tp)
                if end is None or next_offset is None:
                    continue
                lag = max(0, end - next_offset)
                if ends is None:
                    lag = max(lag, self._lag.get(tp, 0))
                self._lag[tp] = lag
                self.metrics.set_lag(tp[0], tp[1], lag)

    async def _request(self, partitions: Sequence[Partition]) -> dict[Partition, int] | None:
        """End offsets of `partitions` (a plain probe when there are none), or None when Kafka did not answer."""
        try:
            async with asyncio.timeout(self.timeout_s):
                if not self._connected:
                    await self._source.start()
                    self._connected = True
                if partitions:
                    ends = await self._source.end_offsets(partitions)
                else:
                    await self._source.probe()
                    ends = {}
        except Exception as exc:
            # The client is closed and built again at the next refresh: a closed client does not retry (and
            # log) in the background during an outage, and a fresh bootstrap follows changed broker addresses.
            await self._disconnect()
            self._mark_unreachable(exc)
            return None
        self._mark_reachable()
        return ends

    async def _fallbacks(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        async def one(tp: Partition) -> int | None:
            # The consumer's position can wait on the broker itself: bounded like the end-offset request.
            async with asyncio.timeout(self.timeout_s):
                return await self._next_offset(tp)

        results = await asyncio.gather(*(one(tp) for tp in partitions), return_exceptions=True)
        nexts: dict[Partition, int] = {}
        for tp, result in zip(partitions, results, strict=True):
            if isinstance(result, BaseException):
                log.debug("no next offset for %s[%d]: %r", tp[0], tp[1], result)
            elif result is not None:
                nexts[tp] = result
        return nexts

    async def _disconnect(self) -> None:
        if self._connected:
            self._connected = False
            await self._source.stop()

    def _mark_unreachable(self, exc: BaseException) -> None:
        self.metrics.set_broker_up(False)
        self.metrics.count_broker_unreachable()
        name, text = type(exc).__name__, str(exc)
        # Kafka's errors already start with their class name; a TimeoutError has no text at all.
        reason = text if text.startswith(name) else f"{name}: {text}" if text else name
        if self._reachable is not False:
            # Once per outage, not once per refresh: the end of the outage is logged too.
            self._unreachable_since = self._clock()
            log.warning(
                "Kafka unreachable: the end-offset request failed or took over %.1f s (%s); consumer lag is held "
                "at its last value until Kafka answers",
                self.timeout_s,
                reason,
            )
        else:
            log.debug("Kafka still unreachable (%s)", reason)
        self._reachable = False

    def _mark_reachable(self) -> None:
        self.metrics.set_broker_up(True)
        if self._reachable is False and self._unreachable_since is not None:
            log.info("Kafka answers again after %.0f s without end offsets", self._clock() - self._unreachable_since)
        self._reachable = True
        self._unreachable_since = None
