"""The refit phase: after early stopping, the chosen number of epochs is trained again on every event."""

from __future__ import annotations

import torch

from models.encoder import EncoderConfig
from models.features import make_event_input, stable_hash64
from models.training import TrainConfig, fitted_sequences, train
from tests.models.factories import BASE_TS_MS, successor_histories

SMALL = EncoderConfig(embedding_dim=8, hidden_dim=8, recency_memory=True)


def test_refit_trains_the_early_stopped_epochs_on_all_events() -> None:
    histories = successor_histories(60, 12, seed=3)
    # An item that only occurs after the validation cutoff: unknown to the first phase, known after the refit.
    late = max(e.ts_ms for h in histories for e in h) + 1
    histories[0] = [*histories[0], make_event_input("browse", late, item_id="late-item")]
    config = TrainConfig(
        epochs=3, patience=1, batch_size=16, negatives=8, max_seq_len=8, validation_fraction=0.1, refit=True
    )
    model, metrics = train(histories, config, SMALL, progress=False)
    assert metrics["refit"] is True
    assert len(metrics["refit_train_loss"]) == metrics["best_epoch"] >= 1
    assert metrics["num_items"] == model.features.num_items
    assert model.features.item_index(stable_hash64("late-item")) != 0
    plain, plain_metrics = train(histories, TrainConfig(**{**config.to_dict(), "refit": False}), SMALL, progress=False)
    assert plain.features.item_index(stable_hash64("late-item")) == 0
    assert plain_metrics["refit"] is False and plain_metrics["refit_train_loss"] == []
    # What each model was fitted on: every event after the refit, the events before the cutoff without it.
    assert metrics["fitted_before_ms"] is None and fitted_sequences(histories, metrics) == histories
    cutoff = plain_metrics["fitted_before_ms"]
    assert cutoff == plain_metrics["validation_cutoff_ms"] is not None
    fitted = fitted_sequences(histories, plain_metrics)
    assert fitted == [[e for e in h if e.ts_ms < cutoff] for h in histories if h[0].ts_ms < cutoff]
    assert 0 < sum(map(len, fitted)) < sum(map(len, histories))
    # Deterministic like the rest of training.
    again, _ = train(histories, config, SMALL, progress=False)
    assert not torch.are_deterministic_algorithms_enabled()  # the switch used while training is restored
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))


def test_no_refit_without_a_validation_split() -> None:
    histories = [[make_event_input("browse", BASE_TS_MS + t, item_id=f"i{t % 3}") for t in range(6)] for _ in range(4)]
    _, metrics = train(histories, TrainConfig(epochs=1, validation_fraction=0.0, refit=True), SMALL, progress=False)
    assert metrics["refit"] is False
    assert metrics["fitted_before_ms"] is None and fitted_sequences(histories, metrics) == histories
