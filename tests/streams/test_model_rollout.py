"""A model rollout against the real broker: a worker group moves from one model to another with a different hidden
size. The lookup answers every not-yet-rebuilt user with the new model (re-encoded from the window, never the old
vector through the new head); the background rebuild brings every stored user to the new model; once the old-model
gauge reads 0 every user has a profile of the new version, and nothing of the old version was published since."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bench.procs import free_port
from models.checkpoint import save_checkpoint, untrained_model
from models.encoder import EncoderConfig
from streams.cli.main import main
from streams.contract.profile import ProfileUpdated
from streams.settings import Settings
from tests.harness import (
    ProfileLog,
    WorkerProcess,
    demo_events,
    expected_counts,
    send_events,
    wait_until,
    worker_samples,
)

pytestmark = pytest.mark.kafka


def _gauge(settings: Settings, name: str) -> float | None:
    """A gauge of the worker's /metrics; None while the worker is not serving it yet."""
    return next((sample.value for sample in worker_samples(settings) if sample.name == name), None)


def _lookup(settings: Settings, user: str) -> ProfileUpdated:
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/profiles/{user}/", timeout=10) as answer:
        return ProfileUpdated.from_bytes(answer.read())


def test_a_rollout_rebuilds_every_user_and_publishes_nothing_of_the_old_model_after_it(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    events = demo_events(users=40, count=800, seed=71)
    expected = expected_counts(events)
    settings = make_settings(embedding_dim=16, expiry_interval_s=1.0, metrics_port=free_port())
    log = ProfileLog(settings)
    old = start_worker(settings, name="old-model")
    send_events(settings, events)
    log.wait_caught_up(expected, 120, "every user's profile of the old model", workers=(old,))
    assert old.stop() == 0
    old_version = log.updates[events[0].user_id][-1].model_version

    new_version = save_checkpoint(
        untrained_model(EncoderConfig(embedding_dim=16, hidden_dim=24), seed=9),
        tmp_path / "model",
        training_fingerprint="rollout-test",
        metrics={},
    )
    assert new_version != old_version

    # The new model without the background rebuild: idle users stay on the old model, the gauge says how many,
    # and the lookup answers them with the new model (HTTP 200 although the hidden sizes differ).
    quiet = settings.model_copy(
        update={"model_dir": tmp_path / "model", "model_rebuild_per_s": 0, "metrics_port": free_port()}
    )
    worker = start_worker(quiet, name="new-model-quiet")
    wait_until(lambda: _gauge(quiet, "profilestream_users_old_model") == len(expected), 90, "the first scan",
               workers=(worker,))  # fmt: skip
    looked_up = {user: _lookup(quiet, user) for user in expected}
    assert {p.model_version for p in looked_up.values()} == {new_version}
    assert all(p.event_count == expected[u][0] for u, p in looked_up.items())
    log.drain()
    assert all(u[-1].model_version == old_version for u in log.updates.values())
    assert worker.stop() == 0
    cut_over = {user: len(updates) for user, updates in log.updates.items()}

    # With the background rebuild: the rollout is done when the gauge reads 0.
    rolling = settings.model_copy(update={"model_dir": tmp_path / "model", "metrics_port": free_port()})
    worker = start_worker(rolling, name="new-model")
    wait_until(lambda: _gauge(rolling, "profilestream_users_old_model") == 0, 120, "the rollout", workers=(worker,))
    log.drain()
    for user, updates in log.updates.items():
        since = updates[cut_over[user] :]
        assert since, f"{user} has no profile of the new model"
        assert {u.model_version for u in since} == {new_version}
        assert (since[-1].event_count, since[-1].last_event_ts_ms) == expected[user]
        versions = [u.version for u in updates]
        assert versions == sorted(set(versions))
        # The rebuild published what the lookup answered before it: the same window, the same model.
        assert np.max(np.abs(np.array(since[-1].embedding) - np.array(looked_up[user].embedding))) <= 1e-6

    # New events fold into the rebuilt state as usual.
    more = demo_events(users=40, count=900, seed=71)[800:]
    send_events(settings, more)
    log.wait_caught_up(expected_counts(events + more), 120, "profiles after the rollout",
               workers=(worker,))  # fmt: skip
    assert {u[-1].model_version for u in log.updates.values()} == {new_version}
    assert worker.stop() == 0
    # The consumers' side of the cut-over: every latest profile on the topic is of the new model.
    flags = ["--kafka-bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    assert main(["profiles", "versions", "--expect", new_version, *flags]) == 0
    assert main(["profiles", "versions", "--expect", old_version, *flags]) == 1
