"""Expiry and erasure against the real broker: no record left in RocksDB, a tombstone on profiles.updated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from state.reader import read_user
from streams.client.producer import EventProducer
from streams.client.subscriber import ProfileDeleted, ProfileSubscriber
from streams.contract.events import BrowseEvent, Event
from streams.contract.profile import ProfileUpdated
from streams.settings import Settings
from streams.worker.partitioner import partition_for_key
from streams.worker.store_layout import TABLE_NAME, find_partition_stores, table_dir
from tests.harness import WorkerProcess, send_events, wait_until

pytestmark = pytest.mark.kafka
T0 = 1_767_225_600_000
HOUR_MS = 3_600_000


class Changes:
    """Every change on the profile topic, in arrival order."""

    def __init__(self, settings: Settings) -> None:
        self.subscriber = ProfileSubscriber(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix, hold=False)
        self.seen: list[ProfileUpdated | ProfileDeleted] = []

    def of(self, user_id: str) -> list[ProfileUpdated | ProfileDeleted]:
        self.seen.extend(self.subscriber.poll(timeout_ms=200))
        return [c for c in self.seen if c.user_id == user_id]


def _browse(user_id: str, n: int, ts_ms: int) -> list[Event]:
    return [
        BrowseEvent(event_id=f"{user_id}-{ts_ms}-{i}", user_id=user_id, ts_ms=ts_ms + i, item_id=f"i{i}")
        for i in range(n)
    ]


def _record_exists(state_dir: Path, user_id: str) -> bool:
    stores = find_partition_stores(table_dir(state_dir), TABLE_NAME)
    return read_user(stores, user_id) is not None


def test_idle_users_expire_in_event_time(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(user_ttl_ms=HOUR_MS, expiry_interval_s=1.0, allowed_lateness_ms=HOUR_MS)
    changes = Changes(settings)
    worker = start_worker(settings)
    send_events(settings, _browse("idle-user", 3, T0) + _browse("busy-user", 3, T0))
    wait_until(lambda: bool(changes.of("idle-user")) and bool(changes.of("busy-user")), 90, "first profiles",
               workers=(worker,))  # fmt: skip
    assert _record_exists(settings.state_dir, "idle-user")
    # The busy user's new events move event time two hours on: the idle user is now past the one-hour TTL.
    # Both users share no partition necessarily, so every partition gets an event from a fresh user too.
    late_ts = T0 + 2 * HOUR_MS
    movers = [e for p in range(settings.partitions * 4) for e in _browse(f"mover-{p}", 1, late_ts)]
    send_events(settings, _browse("busy-user", 1, late_ts) + movers)
    wait_until(lambda: any(isinstance(c, ProfileDeleted) for c in changes.of("idle-user")), 60,
               "the idle user's tombstone", workers=(worker,))  # fmt: skip
    assert not _record_exists(settings.state_dir, "idle-user")
    assert _record_exists(settings.state_dir, "busy-user")
    assert not any(isinstance(c, ProfileDeleted) for c in changes.of("busy-user"))


def test_erasure_deletes_state_and_a_later_event_starts_afresh(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    changes = Changes(settings)
    worker = start_worker(settings)
    send_events(settings, _browse("forget-me", 5, T0) + _browse("keep-me", 5, T0))
    wait_until(lambda: any(isinstance(c, ProfileUpdated) and c.event_count == 5 for c in changes.of("forget-me")),
               90, "the profile before erasure", workers=(worker,))  # fmt: skip
    assert _record_exists(settings.state_dir, "forget-me")

    with EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as producer:
        producer.request_erasure("forget-me")
        producer.flush()
    wait_until(lambda: isinstance(changes.of("forget-me")[-1], ProfileDeleted), 60, "the tombstone",
               workers=(worker,))  # fmt: skip
    wait_until(lambda: not _record_exists(settings.state_dir, "forget-me"), 30, "the record to be gone")
    assert _record_exists(settings.state_dir, "keep-me")

    send_events(settings, _browse("forget-me", 1, T0 + 10_000))
    wait_until(lambda: isinstance(changes.of("forget-me")[-1], ProfileUpdated), 60, "a fresh profile",
               workers=(worker,))  # fmt: skip
    fresh = changes.of("forget-me")[-1]
    assert isinstance(fresh, ProfileUpdated)
    assert (fresh.event_count, fresh.version) == (1, 1)
    assert "forget-me" not in worker.log_text(), "no user id in the worker's log"


def test_an_erasure_read_while_a_backlog_waits_deletes_the_users_events_in_it_too(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    # Requests and events travel on different topics. A worker that starts (or falls behind) with a backlog read
    # the request at once and deleted the user; the user's events sent before the request, still in the
    # backlog, then started a fresh profile after the erasure.
    settings = make_settings()
    others = [f"other-{i}" for i in range(300)]
    backlog = [e for i, user in enumerate(others) for e in _browse(user, 20, T0 + i * 100)]
    send_events(settings, backlog + _browse("forget-me", 5, T0 + 100_000))
    with EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as producer:
        producer.request_erasure("forget-me")
        producer.flush()
    changes = Changes(settings)
    worker = start_worker(settings)

    def came_back() -> bool:
        mine = changes.of("forget-me")
        deleted = [n for n, c in enumerate(mine) if isinstance(c, ProfileDeleted)]
        return bool(deleted) and any(isinstance(c, ProfileUpdated) for c in mine[deleted[0] :])

    def settled() -> bool:
        latest = {c.user_id: c for c in changes.seen}
        folded = all(isinstance(c, ProfileUpdated) and c.event_count == 20 for c in map(latest.get, others))
        return came_back() or (folded and isinstance(latest.get("forget-me"), ProfileDeleted))

    wait_until(settled, 120, "the backlog folded and the tombstone", workers=(worker,))
    assert not came_back(), "the erased user's events in the backlog started a fresh profile after the erasure"
    assert not _record_exists(settings.state_dir, "forget-me")
    assert "forget-me" not in worker.log_text(), "no user id in the worker's log"


def test_an_erased_users_events_are_not_folded_again_after_a_crash(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    # Offsets are committed only every minute here: without the commit the erasure makes before it deletes, the
    # kill below has Kafka deliver the user's five events again, and with the record gone they look new.
    settings = make_settings(commit_interval_s=60.0)
    changes = Changes(settings)
    worker = start_worker(settings)
    send_events(settings, _browse("forget-me", 5, T0))
    wait_until(lambda: any(isinstance(c, ProfileUpdated) and c.event_count == 5 for c in changes.of("forget-me")),
               90, "the profile before erasure", workers=(worker,))  # fmt: skip
    with EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as producer:
        producer.request_erasure("forget-me")
        producer.flush()
    wait_until(lambda: isinstance(changes.of("forget-me")[-1], ProfileDeleted), 60, "the tombstone",
               workers=(worker,))  # fmt: skip
    worker.kill()
    erased_at = len(changes.of("forget-me"))

    worker = start_worker(settings, name="after-kill")
    # A user of the same partition, sent after the erased user's events: once its profile is out, everything
    # before it on that partition has been read again and folded, or recognised as already done.
    markers = (f"marker-{n}" for n in range(1000))
    partition = partition_for_key(b"forget-me", settings.partitions)
    marker = next(m for m in markers if partition_for_key(m.encode(), settings.partitions) == partition)
    send_events(settings, _browse(marker, 1, T0 + 60_000))
    wait_until(lambda: bool(changes.of(marker)), 120, "the marker's profile", workers=(worker,))
    after = changes.of("forget-me")[erased_at:]
    assert not [c for c in after if isinstance(c, ProfileUpdated)], "the erased user came back after the crash"
    assert not _record_exists(settings.state_dir, "forget-me")


def test_an_expired_users_events_are_not_folded_again_after_a_crash(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    # As for erasure: expiry deletes the record that held the user's input positions, so it commits the folded
    # offsets first; with commits a minute apart a kill after the expiry would otherwise bring the user back.
    settings = make_settings(
        commit_interval_s=60.0, user_ttl_ms=HOUR_MS, expiry_interval_s=1.0, allowed_lateness_ms=3 * HOUR_MS
    )
    changes = Changes(settings)
    worker = start_worker(settings)
    partition = partition_for_key(b"idle-user", settings.partitions)
    same_partition = (
        f"mover-{n}" for n in range(1000) if partition_for_key(f"mover-{n}".encode(), settings.partitions) == partition
    )
    send_events(settings, _browse("idle-user", 3, T0))
    wait_until(lambda: bool(changes.of("idle-user")), 90, "the first profile", workers=(worker,))
    send_events(settings, _browse(next(same_partition), 1, T0 + 2 * HOUR_MS))
    wait_until(lambda: isinstance(changes.of("idle-user")[-1], ProfileDeleted), 60, "the idle user's tombstone",
               workers=(worker,))  # fmt: skip
    worker.kill()
    expired_at = len(changes.of("idle-user"))

    worker = start_worker(settings, name="after-kill")
    marker = next(same_partition)
    send_events(settings, _browse(marker, 1, T0 + 2 * HOUR_MS + 60_000))
    wait_until(lambda: bool(changes.of(marker)), 120, "the marker's profile", workers=(worker,))
    after = changes.of("idle-user")[expired_at:]
    assert not [c for c in after if isinstance(c, ProfileUpdated)], "the expired user came back after the crash"
    assert not _record_exists(settings.state_dir, "idle-user")
