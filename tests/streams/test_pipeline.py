"""End to end against the real local broker: producer SDK -> worker process -> profiles.updated."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from streams.client.producer import EventProducer
from streams.client.subscriber import ProfileSubscriber
from streams.contract.events import Event
from streams.contract.profile import ProfileUpdated
from streams.offline.demo import DemoTraffic
from streams.settings import Settings
from tests.conftest import WorkerProcess, wait_until

pytestmark = pytest.mark.kafka


def _events(users: int, count: int, seed: int) -> list[Event]:
    traffic = DemoTraffic(users, seed=seed)
    return list(traffic.events(count))


def _send(settings: Settings, events: list[Event]) -> None:
    with EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as producer:
        for event in events:
            producer.send(event)
        producer.flush()


class ProfileLog:
    """Every profile update seen, per user, in arrival order."""

    def __init__(self, settings: Settings) -> None:
        self.subscriber = ProfileSubscriber(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
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

    def caught_up(self, expected: dict[str, tuple[int, int]]) -> bool:
        """True when every user's latest update has the expected (event_count, last_event_ts)."""
        self.drain()
        self.last_mismatches = self.mismatches(expected)
        return not self.last_mismatches


def _expected(events: list[Event]) -> dict[str, tuple[int, int]]:
    counts: dict[str, int] = defaultdict(int)
    newest: dict[str, int] = {}
    for event in events:
        counts[event.user_id] += 1
        newest[event.user_id] = max(newest.get(event.user_id, 0), event.ts_ms)
    return {user: (counts[user], newest[user]) for user in counts}


PROFILE_SCHEMA = json.loads(
    (Path(__file__).parents[2] / "streams" / "contract" / "schemas" / "profile-updated-v1.schema.json").read_text()
)


def _check_versions_and_embeddings(log: ProfileLog, dim: int) -> None:
    for updates in log.updates.values():
        jsonschema.validate(updates[-1].to_dict(), PROFILE_SCHEMA)
    for user, updates in log.updates.items():
        versions = [u.version for u in updates]
        assert versions == sorted(set(versions)), f"versions of {user} do not strictly increase: {versions}"
        for update in updates:
            assert len(update.embedding) == dim
            assert all(math.isfinite(x) for x in update.embedding)
            norm = math.sqrt(sum(x * x for x in update.embedding))
            assert abs(norm - 1.0) < 1e-4


def test_every_user_gets_consistent_profiles(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(embedding_dim=32)
    events = _events(users=200, count=3000, seed=11)
    expected = _expected(events)
    assert len(expected) == 200
    log = ProfileLog(settings)
    worker = start_worker(settings)
    _send(settings, events)
    wait_until(lambda: log.caught_up(expected), 120, "every user's final profile", workers=(worker,))
    _check_versions_and_embeddings(log, dim=32)
    # The HTTP lookup answers with the same profile as the last one published.
    user = sorted(expected)[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/profiles/{user}/", timeout=10) as answer:
        looked_up = ProfileUpdated.from_bytes(answer.read())
    published = log.updates[user][-1]
    assert (looked_up.version, looked_up.event_count) == (published.version, published.event_count)
    assert max(abs(a - b) for a, b in zip(looked_up.embedding, published.embedding, strict=True)) < 1e-6
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/profiles/nobody/", timeout=10)
    assert missing.value.code == 404
    assert worker.proc.poll() is None, worker.log_text()[-3000:]
    assert worker.stop() == 0


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_restart_mid_stream_loses_nothing_and_folds_nothing_twice(
    how: str, make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    """The worker goes away while busy, gracefully (SIGTERM) or not (SIGKILL: no commit, no flush), and a new one
    takes over. Kafka redelivers what was not committed; no user's version may go back and every count must be
    exact: nothing lost, nothing folded twice."""
    settings = make_settings(embedding_dim=16)
    events = _events(users=200, count=4000, seed=12 if how == "stop" else 13)
    expected = _expected(events)
    log = ProfileLog(settings)
    first = start_worker(settings, name="first")
    _send(settings, events[:2500])
    # Go while the worker is busy: once some profiles arrived, not all.
    wait_until(lambda: log.count() > 100, 60, "first profiles", workers=(first,))
    if how == "stop":
        assert first.stop() == 0, first.log_text()[-3000:]
    else:
        first.kill()
    _send(settings, events[2500:])
    second = start_worker(settings, name="second")
    try:
        # After a kill the new worker joins only once the group has timed out the dead member's session.
        wait_until(lambda: log.caught_up(expected), 180, f"every user's final profile after the {how}",
                   workers=(second,))  # fmt: skip
    except BaseException:
        wrong = {u: (have, expected[u]) for u, have in list(log.last_mismatches.items())[:10]}
        print(f"{len(log.last_mismatches)} users differ, (have, want) of some: {wrong}")
        raise
    _check_versions_and_embeddings(log, dim=16)
