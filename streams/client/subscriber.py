"""Consumer side: read the compacted profile topic from the start, then follow it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streams.client.security import kafka_client_options
from streams.contract.profile import ProfileDecodeError, ProfileUpdated
from streams.contract.topics import PROFILES
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProfileDeleted:
    """A tombstone: the user's profile was removed (expiry or erasure)."""

    user_id: str
    deleted_at_ms: int | None = None
    """When the worker published the tombstone (the record's timestamp), if the record carries one."""


ProfileChange = ProfileUpdated | ProfileDeleted


def supersedes(profile: ProfileUpdated, held_version: int, held_updated_at_ms: int) -> bool:
    """Whether ``profile`` replaces the same user's profile read before it (its ``version`` and ``updated_at_ms``).

    Versions are strictly increasing per user as the worker publishes them, but a producer that retries a batch
    the broker had already written makes the broker store it twice (same version, same ``updated_at``). A lower
    version published later is accepted only when it was published later too: a user whose state was lost
    starts counting again, and that newer profile must not be ignored.
    """
    return profile.version > held_version or profile.updated_at_ms > held_updated_at_ms


class ProfileSubscriber:
    """Holds every user's latest profile: :meth:`bootstrap` reads the compacted topic to its end, then
    :meth:`follow` yields each change as it arrives and keeps :attr:`profiles` current.

    It assigns itself every partition (no consumer group), so every subscriber sees every user. A message that
    is not a valid profile is counted in :attr:`skipped` and logged without its content. A profile that does
    not supersede the one held (see :func:`supersedes`: the same profile again after a producer's retry, or an
    older one behind a newer) is counted in :attr:`superseded` and not passed on. With ``hold=False`` it keeps
    nothing (:attr:`profiles` stays empty) and passes every profile on: a consumer that keeps its own, smaller
    view takes every change from :meth:`poll` and from :meth:`bootstrap`'s ``on_change`` and applies
    :func:`supersedes` itself.
    """

    def __init__(
        self, bootstrap_servers: str, *, topic_prefix: str = "", hold: bool = True, **kafka_config: Any
    ) -> None:
        self.topic = f"{topic_prefix}{PROFILES}"
        self.profiles: dict[str, ProfileUpdated] = {}
        self._hold = hold
        self.skipped = 0
        self.superseded = 0
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            **kafka_config,
        )
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            self._consumer.close()
            raise RuntimeError(f"topic {self.topic} does not exist; run `profilestream topics create`")
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    @classmethod
    def from_settings(cls, settings: Settings, **kafka_config: Any) -> ProfileSubscriber:
        """A subscriber to the settings' cluster and topic prefix, with their security (TLS, SASL)."""
        options = {**kafka_client_options(settings), **kafka_config}
        return cls(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix, **options)

    def _apply(self, key: bytes | None, value: bytes | None, timestamp_ms: int | None = None) -> ProfileChange | None:
        if key is None:
            self.skipped += 1
            log.warning("skipped a profile message without key")
            return None
        try:
            user_id = key.decode("utf-8")
        except UnicodeDecodeError:
            # Every such key would read as the same replacement character: a tombstone would delete that user.
            self.skipped += 1
            log.warning("skipped a profile message whose key is not UTF-8")
            return None
        if value is None:
            if self._hold:
                self.profiles.pop(user_id, None)
            return ProfileDeleted(user_id, timestamp_ms if timestamp_ms is not None and timestamp_ms >= 0 else None)
        try:
            profile = ProfileUpdated.from_bytes(value, key)
        except ProfileDecodeError as exc:
            self.skipped += 1
            log.warning("skipped an invalid profile message: %s", exc)
            return None
        if self._hold:
            held = self.profiles.get(user_id)
            if held is not None and not supersedes(profile, held.version, held.updated_at_ms):
                self.superseded += 1
                return None
            self.profiles[user_id] = profile
        return profile

    def poll(self, timeout_ms: int = 500) -> list[ProfileChange]:
        """Read what arrived within ``timeout_ms``, apply it and return the changes in partition order."""
        changes: list[ProfileChange] = []
        for records in self._consumer.poll(timeout_ms=timeout_ms).values():
            for record in records:
                change = self._apply(record.key, record.value, record.timestamp)
                if change is not None:
                    changes.append(change)
        return changes

    def bootstrap(
        self, timeout_ms: int = 60_000, on_change: Callable[[ProfileChange], None] | None = None
    ) -> dict[str, ProfileUpdated]:
        """Read the topic up to the end offsets seen now, passing each change to ``on_change`` if given; returns
        every user's latest profile (empty when the subscriber does not hold them)."""
        end = self._consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + timeout_ms / 1000
        while any(self._consumer.position(tp) < end[tp] for tp in self._partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.topic} to its end within {timeout_ms} ms")
            for change in self.poll(timeout_ms=200):
                if on_change is not None:
                    on_change(change)
        return self.profiles

    def lag(self) -> int:
        """Profile messages on the broker that this subscriber has not read yet (0: caught up as of now)."""
        end = self._consumer.end_offsets(self._partitions)
        return sum(max(0, end[tp] - self._consumer.position(tp)) for tp in self._partitions)

    def follow(self, timeout_ms: int = 500) -> Iterator[ProfileChange]:
        """Yield changes forever (until the caller stops iterating)."""
        while True:
            yield from self.poll(timeout_ms=timeout_ms)

    def close(self) -> None:
        """Release the connection."""
        self._consumer.close()

    def __enter__(self) -> ProfileSubscriber:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
