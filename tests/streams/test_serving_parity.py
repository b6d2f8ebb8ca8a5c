"""Serving parity: a trained checkpoint served by a worker through Kafka gives, per user, the same final embedding
as the offline ``encode`` of that user's events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import EncoderConfig
from models.features import EventInput
from models.training import TrainConfig, train
from state.spec import StateSpec
from streams.bridge import model_sequence
from streams.contract.events import Event
from streams.settings import Settings
from tests.harness import ProfileLog, WorkerProcess, demo_events, expected_counts, send_events

pytestmark = pytest.mark.kafka
MAX_TERMS = StateSpec().max_query_terms


def _sequences(events: list[Event]) -> dict[str, list[EventInput]]:
    """Each user's events as the model sees them, through the worker's own conversion."""
    per_user: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        per_user[event.user_id].append(event)
    return {user: model_sequence(user_events, MAX_TERMS) for user, user_events in per_user.items()}


def _trained_checkpoint(events: list[Event], out: Path) -> str:
    config = TrainConfig(seed=3, epochs=2, batch_size=32, negatives=64, patience=1, num_threads=1)
    # The configuration `profilestream train` writes: recency memory and item vectors with their category's part.
    encoder_config = EncoderConfig(embedding_dim=16, hidden_dim=16, recency_memory=True, item_category_vectors=True)
    model, metrics = train(list(_sequences(events).values()), config, encoder_config, progress=False)
    return save_checkpoint(model, out, training_fingerprint="parity-test", metrics=dict(metrics))


def test_worker_profiles_equal_offline_encode(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    # Users with more events than the recent window, so the base vector is exercised too.
    events = demo_events(users=20, count=2000, seed=41)
    version = _trained_checkpoint(demo_events(users=60, count=1500, seed=40), tmp_path / "model")
    settings = make_settings(model_dir=tmp_path / "model")
    log = ProfileLog(settings)
    worker = start_worker(settings)
    send_events(settings, events)
    log.wait_caught_up(expected_counts(events), 120, "every user's final profile", workers=(worker,))

    model, metadata = load_checkpoint(tmp_path / "model")
    assert metadata.model_version == version
    worst = 0.0
    for user, sequence in _sequences(events).items():
        final = log.updates[user][-1]
        assert final.model_version == version
        with torch.inference_mode():
            offline = model.encode(sequence).numpy()
        worst = max(worst, float(np.max(np.abs(np.array(final.embedding) - offline))))
    # Profiles travel as JSON with 7 decimals; anything above that rounding is drift.
    assert worst <= 1e-5, f"stream and offline profiles differ by {worst}"
