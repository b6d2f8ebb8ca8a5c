"""The recency memory: its update rule, stream/offline parity with it, checkpoints with and without it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from models.checkpoint import HPARAMS_FILE, load_checkpoint, save_checkpoint
from models.encoder import EncoderConfig, ProfileEncoder
from models.features import EventInput, FeatureSpace, make_event_input
from tests.models.factories import fold_in_random_chunks, random_history

TOLERANCE = 1e-5
CONFIG = EncoderConfig(embedding_dim=12, hidden_dim=20, recency_memory=True)


def _model(histories: list[list[EventInput]], seed: int = 0) -> ProfileEncoder:
    torch.manual_seed(seed)
    model = ProfileEncoder(CONFIG, FeatureSpace.fit(histories[:3])).eval()
    with torch.no_grad():  # a non-trivial gate and decay, as after training
        assert model.recency_gate is not None and model.recency_decay_logit is not None
        model.recency_gate.weight.normal_(std=0.5)
        model.recency_decay_logit.fill_(0.7)
    return model


@pytest.fixture
def histories() -> list[list[EventInput]]:
    rnd = random.Random(11)
    return [random_history(rnd, n) for n in (1, 2, 7, 30, 55, 4)]


def test_state_is_gru_state_and_memory(histories: list[list[EventInput]]) -> None:
    model = _model(histories)
    assert model.hidden_dim == CONFIG.hidden_dim + CONFIG.embedding_dim
    h, profiles = model.fold(model.initial_hidden(len(histories)), histories, [None] * len(histories))
    assert h.shape == (len(histories), 32) and profiles.shape == (len(histories), 12)
    assert torch.allclose(profiles.norm(dim=1), torch.ones(len(histories)), atol=1e-6)


def test_fold_in_chunks_equals_encode_for_mixed_lengths(histories: list[list[EventInput]]) -> None:
    model = _model(histories, seed=2)
    expected_h, expected = model.encode_batch_state(histories)
    h = fold_in_random_chunks(model, histories, random.Random(5), max_chunk=9)
    assert (h - expected_h).abs().max().item() <= TOLERANCE
    assert (model.profile(h) - expected).abs().max().item() <= TOLERANCE


def test_memory_update_rule() -> None:
    events = [
        make_event_input("browse", 1_000, item_id="a"),
        make_event_input("search", 2_000, query="spa"),
        make_event_input("browse", 3_000, item_id="never-seen"),
        make_event_input("purchase", 4_000, item_id="b", price=10.0, quantity=1),
    ]
    model = _model([[events[0], events[3]]])  # "never-seen" stays out of the vocabulary
    lam = torch.sigmoid(torch.tensor(0.7))
    vectors = model.item_vectors()
    v_a, v_b = (vectors[model.features.item_index(events[i].item_hash)] for i in (0, 3))
    state, _ = model.encode_batch_state([events[:3]])
    memory = state[0, CONFIG.hidden_dim :]
    assert torch.allclose(memory, (1 - lam) * v_a, atol=1e-6)  # searches and unknown items leave it alone
    state, _ = model.encode_batch_state([events])
    assert torch.allclose(state[0, CONFIG.hidden_dim :], lam * memory + (1 - lam) * v_b, atol=1e-6)


def test_profile_leans_to_recent_items_with_a_strong_gate() -> None:
    events = [make_event_input("browse", 1_000 * t, item_id=f"i{t}") for t in range(8)]
    model = _model([events])
    with torch.no_grad():
        assert model.recency_gate is not None
        model.recency_gate.weight.zero_()
        model.recency_gate.bias.fill_(50.0)  # the memory dominates the profile
    scores = model.item_vectors()[1:] @ model.encode(events)
    assert int(scores.argmax()) + 1 == model.features.item_index(events[-1].item_hash)


def test_checkpoint_round_trip_and_old_checkpoints(tmp_path: Path, histories: list[list[EventInput]]) -> None:
    model = _model(histories)
    model.trained = True
    version = save_checkpoint(model, tmp_path / "with", training_fingerprint="f", metrics={})
    loaded, metadata = load_checkpoint(tmp_path / "with")
    assert metadata.model_version == version and loaded.config.recency_memory
    assert torch.equal(loaded.encode_batch(histories), model.encode_batch(histories))
    # A checkpoint written before the option existed has no such key: it loads as a model without memory.
    plain = ProfileEncoder(EncoderConfig(embedding_dim=12, hidden_dim=20), model.features).eval()
    plain.trained = True
    save_checkpoint(plain, tmp_path / "old", training_fingerprint="f", metrics={})
    hparams = json.loads((tmp_path / "old" / HPARAMS_FILE).read_text())
    del hparams["recency_memory"]
    (tmp_path / "old" / HPARAMS_FILE).write_text(json.dumps(hparams))
    old, _ = load_checkpoint(tmp_path / "old")
    assert not old.config.recency_memory and old.hidden_dim == 20
