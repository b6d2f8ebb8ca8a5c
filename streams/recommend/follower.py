"""Reads the three topics the recommender needs into a :class:`Recommender`: bootstrap to the end, then follow.

Item vectors first (so profiles find their index), then purchases, then profiles; each topic is read from its
start with every partition assigned (no consumer group: every recommender holds everything). Profiles come
through the SDK's :class:`ProfileSubscriber`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streams.client.security import kafka_client_options
from streams.client.subscriber import ProfileSubscriber
from streams.contract.topics import MODEL_ITEMS, input_topic
from streams.recommend.metrics import RecommendMetrics
from streams.recommend.service import Recommender
from streams.settings import Settings

log = logging.getLogger(__name__)


class _TopicReader:
    """Every partition of one topic from its start, without a group."""

    def __init__(self, bootstrap_servers: str, topic: str, **kafka_config: Any) -> None:
        self.topic = topic
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None, **kafka_config
        )
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            self._consumer.close()
            raise RuntimeError(f"topic {topic} does not exist; run `profilestream topics create`")
        self._partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    def poll(self, timeout_ms: int) -> list[tuple[bytes | None, bytes | None]]:
        return [(r.key, r.value) for records in self._consumer.poll(timeout_ms=timeout_ms).values() for r in records]

    def at_end(self, end: dict[TopicPartition, int]) -> bool:
        return all(self._consumer.position(tp) >= end[tp] for tp in self._partitions)

    def end_offsets(self) -> dict[TopicPartition, int]:
        return dict(self._consumer.end_offsets(self._partitions))

    def close(self) -> None:
        self._consumer.close()


PURCHASE_EXPIRY_EVERY_MS = 60_000
"""Longest time between two sweeps of purchases past the retention (a tenth of the retention if shorter)."""


def wall_clock_ms() -> int:
    """The wall clock in epoch milliseconds (purchase retention counts from it, as the broker's does)."""
    return time.time_ns() // 1_000_000


class Follower:
    """Applies the items, purchase and profile topics to ``recommender`` and keeps the gauges current.

    ``kafka_config`` goes to all three consumers (TLS and SASL: ``streams.client.security.kafka_client_options``).
    With ``purchase_retention_ms`` (the input topics' retention), purchases older than it are forgotten after
    the bootstrap and then at least every `PURCHASE_EXPIRY_EVERY_MS`.
    """

    def __init__(
        self,
        recommender: Recommender,
        metrics: RecommendMetrics,
        bootstrap_servers: str,
        topic_prefix: str = "",
        purchase_retention_ms: int | None = None,
        **kafka_config: Any,
    ) -> None:
        self._recommender = recommender
        self._metrics = metrics
        self._purchase_retention_ms = purchase_retention_ms
        self._next_expiry_ms = 0
        self._items = _TopicReader(bootstrap_servers, f"{topic_prefix}{MODEL_ITEMS}", **kafka_config)
        try:
            self._purchases = _TopicReader(
                bootstrap_servers, f"{topic_prefix}{input_topic('purchase')}", **kafka_config
            )
        except RuntimeError:
            self._items.close()
            raise
        try:
            # hold=False: the recommender keeps a compact vector per user, not the whole profile.
            self._profiles = ProfileSubscriber(bootstrap_servers, topic_prefix=topic_prefix, hold=False, **kafka_config)
        except RuntimeError:
            self._items.close()
            self._purchases.close()
            raise
        self._skipped = {"items": 0, "purchases": 0, "profiles": 0}

    @classmethod
    def from_settings(cls, settings: Settings, recommender: Recommender, metrics: RecommendMetrics) -> Follower:
        """A follower of the settings' cluster and topic prefix, with their security (TLS, SASL)."""
        return cls(
            recommender,
            metrics,
            settings.kafka_bootstrap,
            settings.topic_prefix,
            purchase_retention_ms=settings.input_retention_ms,
            **kafka_client_options(settings),
        )

    def bootstrap(self, timeout_s: float) -> None:
        """Read every topic up to the end offsets seen now (items, purchases, then profiles)."""
        deadline = time.monotonic() + timeout_s
        for reader, apply in ((self._items, self._apply_items), (self._purchases, self._apply_purchases)):
            end = reader.end_offsets()
            while not reader.at_end(end):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {reader.topic} to its end within {timeout_s} s")
                apply(reader.poll(200))
        end_profiles = max(1.0, deadline - time.monotonic())
        self._profiles.bootstrap(
            timeout_ms=int(end_profiles * 1000), on_change=lambda change: self._recommender.profiles_changed([change])
        )
        self._expire_purchases()
        self._refresh_gauges()

    def poll_once(self, timeout_ms: int = 200) -> None:
        """Read and apply what arrived on any of the topics."""
        self._apply_items(self._items.poll(timeout_ms // 4))
        self._apply_purchases(self._purchases.poll(timeout_ms // 4))
        self._recommender.profiles_changed(self._profiles.poll(timeout_ms // 2))
        self._expire_purchases()
        self._refresh_gauges()

    def _expire_purchases(self) -> None:
        retention_ms = self._purchase_retention_ms
        now_ms = wall_clock_ms()
        if retention_ms is None or now_ms < self._next_expiry_ms:
            return
        self._next_expiry_ms = now_ms + min(PURCHASE_EXPIRY_EVERY_MS, max(retention_ms // 10, 1))
        with self._recommender.lock:
            dropped = self._recommender.purchases.expire(now_ms - retention_ms)
        if dropped:
            self._metrics.purchases_expired.inc(dropped)

    def _apply_items(self, records: list[tuple[bytes | None, bytes | None]]) -> None:
        if not records:
            return
        with self._recommender.lock:
            for key, value in records:
                self._recommender.catalog.apply(key, value)

    def _apply_purchases(self, records: list[tuple[bytes | None, bytes | None]]) -> None:
        if not records:
            return
        with self._recommender.lock:
            for key, value in records:
                self._recommender.purchases.apply(key, value)

    def _refresh_gauges(self) -> None:
        with self._recommender.lock:
            sizes = {v: idx.index.size for v, idx in self._recommender.catalog.loaded.items()}
            skipped = {
                "items": self._recommender.catalog.skipped,
                "purchases": self._recommender.purchases.skipped,
                "profiles": self._profiles.skipped,
            }
            profiles = len(self._recommender.profiles)
        self._metrics.set_versions(sizes, self._recommender.coverage.ratios(sizes))
        self._metrics.profiles.set(profiles)
        for kind, total in skipped.items():
            if total > self._skipped[kind]:
                self._metrics.skipped_records.labels(kind).inc(total - self._skipped[kind])
                self._skipped[kind] = total

    def close(self) -> None:
        """Release the three consumers."""
        self._items.close()
        self._purchases.close()
        self._profiles.close()
