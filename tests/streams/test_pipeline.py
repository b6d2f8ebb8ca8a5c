"""End to end against the real local broker: producer SDK -> worker process -> profiles.updated."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from streams.contract.profile import ProfileUpdated
from streams.settings import Settings
from tests.harness import ProfileLog, WorkerProcess, demo_events, expected_counts, send_events, wait_until

pytestmark = pytest.mark.kafka


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
    events = demo_events(users=200, count=3000, seed=11)
    expected = expected_counts(events)
    assert len(expected) == 200
    log = ProfileLog(settings)
    worker = start_worker(settings)
    send_events(settings, events)
    log.wait_caught_up(expected, 120, "every user's final profile", workers=(worker,))
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
    # The liveness view answers from the worker's event loop.
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/healthz/", timeout=10) as answer:
        assert json.loads(answer.read()) == {"status": "ok"}
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
    events = demo_events(users=200, count=4000, seed=12 if how == "stop" else 13)
    expected = expected_counts(events)
    log = ProfileLog(settings)
    first = start_worker(settings, name="first")
    send_events(settings, events[:2500])
    # Go while the worker is busy: once some profiles arrived, not all.
    wait_until(lambda: log.count() > 100, 60, "first profiles", workers=(first,))
    if how == "stop":
        assert first.stop() == 0, first.log_text()[-3000:]
    else:
        first.kill()
    send_events(settings, events[2500:])
    second = start_worker(settings, name="second")
    try:
        # After a kill the new worker joins only once the group has timed out the dead member's session.
        log.wait_caught_up(expected, 180, f"every user's final profile after the {how}",
                   workers=(second,))  # fmt: skip
    except BaseException:
        wrong = {u: (have, expected[u]) for u, have in list(log.last_mismatches.items())[:10]}
        print(f"{len(log.last_mismatches)} users differ, (have, want) of some: {wrong}")
        raise
    _check_versions_and_embeddings(log, dim=16)
