"""The erasure bound on the worker's disk, against the real broker: after an erasure, once the bound has passed,
no file under the worker's state directory (SST files, write-ahead logs, MANIFEST, RocksDB's own logs) holds the
erased user's id or any of their stored values. The state is stored uncompressed so its files can be searched,
and the test first checks that the search finds the user before the erasure."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from state.reader import read_user
from streams.client.producer import EventProducer
from streams.client.subscriber import ProfileDeleted, ProfileSubscriber
from streams.contract.events import BrowseEvent, Event
from streams.settings import Settings
from streams.worker.store_layout import worker_stores
from tests.harness import ProfileLog, WorkerProcess, expected_counts, send_events, wait_until

pytestmark = pytest.mark.kafka
T0 = 1_767_225_600_000
BOUND_MS = 6000


def _files_holding(root: Path, *needles: bytes) -> list[str]:
    """Every file under ``root`` that contains one of ``needles``."""
    found = []
    for path in sorted(root.rglob("*")):
        try:
            data = path.read_bytes() if path.is_file() else b""
        except FileNotFoundError:  # RocksDB deleted it meanwhile
            continue
        if any(needle in data for needle in needles):
            found.append(str(path.relative_to(root)))
    return found


def _browse(user_id: str, items: list[str]) -> list[Event]:
    return [
        BrowseEvent(event_id=f"{user_id}-{i}", user_id=user_id, ts_ms=T0 + i, item_id=item)
        for i, item in enumerate(items)
    ]


def test_an_erased_user_leaves_every_file_of_the_state_store_within_the_bound(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(erasure_bound_ms=BOUND_MS, state_compression=False)
    user = f"erased-{uuid.uuid4().hex}"
    kept = f"kept-{uuid.uuid4().hex}"
    profiles = ProfileLog(settings)
    worker = start_worker(settings)
    # Different histories, so the two users' stored values differ.
    events = _browse(user, ["a", "b", "c"]) + _browse(kept, ["x", "y"])
    send_events(settings, events)
    profiles.wait_caught_up(expected_counts(events), 90, "both profiles", workers=(worker,))
    record = read_user(worker_stores(settings.state_dir), user)
    assert record is not None
    # The user's hidden vector, as the state codec writes it: a value no other user's record holds.
    value = record.hidden.astype("<f4").tobytes()
    needles = (user.encode(), user.encode().hex().upper().encode(), value)  # hex: how RocksDB's LOG writes keys
    assert _files_holding(settings.state_dir, user.encode()), "the user's id is on disk before the erasure"
    assert _files_holding(settings.state_dir, value), "the user's stored value is on disk before the erasure"

    deletions = ProfileSubscriber(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
    with EventProducer.from_settings(settings) as producer:
        producer.request_erasure(user)
        producer.flush()
    seen: list[object] = []
    wait_until(lambda: any(isinstance(c, ProfileDeleted) and c.user_id == user for c in _extend(seen, deletions)),
               60, "the erasure's tombstone", workers=(worker,))  # fmt: skip
    wait_until(lambda: not _files_holding(settings.state_dir, *needles), 60,
               "no file of the state directory to hold the erased user", workers=(worker,),
               detail=lambda: _files_holding(settings.state_dir, *needles))  # fmt: skip
    assert "deleted records purged from disk" in worker.log_text()
    assert read_user(worker_stores(settings.state_dir), kept) is not None
    assert user not in worker.log_text(), "no user id in the worker's log"
    deletions.close()
    profiles.subscriber.close()
    assert worker.stop() == 0


def _extend(seen: list[object], subscriber: ProfileSubscriber) -> list[object]:
    seen.extend(subscriber.poll(timeout_ms=200))
    return seen
