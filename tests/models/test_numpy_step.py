"""The numpy fold the worker runs equals the encoder's torch fold and its offline `encode`, in every configuration."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from models import numpy_step
from models.encoder import FOLD_STEP_LIMIT, EncoderConfig
from models.errors import ModelError
from models.features import EventInput
from models.numpy_step import NumpyEncoder
from tests.models.factories import noisy_model, random_history

TOLERANCE = 1e-5  # the serving-parity bound; float32 rounding of the two paths is about 1e-7


@pytest.fixture(scope="module")
def histories() -> list[list[EventInput]]:
    rnd = random.Random(11)
    return [random_history(rnd, rnd.randint(1, 30)) for _ in range(60)]


CONFIGS = [
    pytest.param(EncoderConfig(embedding_dim=16, hidden_dim=24), id="plain"),
    pytest.param(EncoderConfig(embedding_dim=16, hidden_dim=24, recency_memory=True), id="recency"),
    pytest.param(
        EncoderConfig(embedding_dim=16, hidden_dim=16, recency_memory=True, item_category_vectors=True),
        id="recency+categories",
    ),
    pytest.param(
        EncoderConfig(embedding_dim=16, hidden_dim=8, recency_memory=True, tie_item_embeddings=False),
        id="recency+untied",
    ),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_numpy_fold_equals_torch_fold_chunk_by_chunk(histories: list[list[EventInput]], config: EncoderConfig) -> None:
    # Chunks of 1..2*FOLD_STEP_LIMIT events: step rows and the long rows that go through torch's `run` mix.
    model = noisy_model(histories, config)
    fast = NumpyEncoder(model)
    rnd = random.Random(3)
    h_torch = model.initial_hidden(len(histories))
    h_numpy = fast.initial_hidden(len(histories))
    done = [0] * len(histories)
    worst = 0.0
    while any(d < len(s) for d, s in zip(done, histories, strict=True)):
        users = [b for b, s in enumerate(histories) if done[b] < len(s)]
        chunks = [histories[b][done[b] : done[b] + rnd.randint(1, 2 * FOLD_STEP_LIMIT)] for b in users]
        prev = [histories[b][done[b] - 1].ts_ms if done[b] else None for b in users]
        h_torch[users], p_torch = model.fold(h_torch[users], chunks, prev)
        h_numpy[users], p_numpy = fast.fold(h_numpy[users], chunks, prev)
        assert p_numpy.dtype == np.float32 and h_numpy.dtype == np.float32
        worst = max(worst, float(np.abs(p_numpy - p_torch.numpy()).max()))
        worst = max(worst, float(np.abs(h_numpy[users] - h_torch[users].numpy()).max()))
        for b, chunk in zip(users, chunks, strict=True):
            done[b] += len(chunk)
    assert worst <= TOLERANCE, f"numpy and torch folds differ by {worst}"
    offline = model.encode_batch(histories).numpy()
    assert float(np.abs(fast.profile(h_numpy) - offline).max()) <= TOLERANCE


def test_numpy_step_one_event_per_user_is_the_torch_step(histories: list[list[EventInput]]) -> None:
    config = EncoderConfig(embedding_dim=16, hidden_dim=16, recency_memory=True, item_category_vectors=True)
    model = noisy_model(histories, config, seed=5)
    fast = NumpyEncoder(model)
    events = [h[-1] for h in histories]
    prev = [h[-2].ts_ms if len(h) > 1 else None for h in histories]
    h0 = torch.randn(len(histories), model.hidden_dim, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model.step(h0, model.features.tensorize(events, prev))
        expected_profiles = model.profile(expected)
    got = fast.step(h0.numpy(), model.features.event_codes(events, prev))
    assert float(np.abs(got - expected.numpy()).max()) <= TOLERANCE
    assert float(np.abs(fast.profile(got) - expected_profiles.numpy()).max()) <= TOLERANCE


def test_large_gate_inputs_follow_torch_softplus_and_sigmoid(histories: list[list[EventInput]]) -> None:
    # Far outside the usual range: softplus's linear branch, saturated gates, no float32 overflow.
    config = EncoderConfig(embedding_dim=16, hidden_dim=16, recency_memory=True)
    model = noisy_model(histories, config, seed=2)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(40.0)
    fast = NumpyEncoder(model)
    rows = [h[:3] for h in histories]
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is the right answer
        h, profiles = fast.fold(fast.initial_hidden(len(rows)), rows, [None] * len(rows))
    h_torch, p_torch = model.fold(model.initial_hidden(len(rows)), rows, [None] * len(rows))
    assert float(np.abs(h - h_torch.numpy()).max()) <= TOLERANCE
    assert float(np.abs(profiles - p_torch.numpy()).max()) <= TOLERANCE


def test_fold_rejects_what_the_torch_fold_rejects(histories: list[list[EventInput]]) -> None:
    model = noisy_model(histories, EncoderConfig(embedding_dim=8, hidden_dim=8))
    fast = NumpyEncoder(model)
    with pytest.raises(ValueError, match="at least one new event"):
        fast.fold(fast.initial_hidden(2), [histories[0], []], [None, None])
    with pytest.raises(ValueError, match="must be float32"):
        fast.fold(fast.initial_hidden(1).astype(np.float64), [histories[0]], [None])
    with pytest.raises(ValueError, match=r"must be \[1, 8\]"):
        fast.fold(fast.initial_hidden(3), [histories[0]], [None])
    with pytest.raises(ValueError, match="previous timestamps"):
        fast.fold(fast.initial_hidden(1), [histories[0]], [None, None])
    h, profiles = fast.fold(fast.initial_hidden(0), [], [])
    assert h.shape == (0, 8) and profiles.shape == (0, 8)


def test_fold_leaves_the_callers_state_alone(histories: list[list[EventInput]]) -> None:
    # The worker's record cache holds the vectors that go in; a fold must not write into them.
    model = noisy_model(histories, EncoderConfig(embedding_dim=8, hidden_dim=8, recency_memory=True))
    fast = NumpyEncoder(model)
    rows = [h[:2] for h in histories] + [h[:6] for h in histories]  # step rows and long rows
    h0 = np.random.default_rng(0).normal(size=(len(rows), fast.hidden_dim)).astype(np.float32)
    before = h0.copy()
    h, _ = fast.fold(h0, rows, [None] * len(rows))
    assert np.array_equal(h0, before)
    assert not np.shares_memory(h, h0)


def test_the_numpy_step_folds_with_the_models_weights_as_they_are(histories: list[list[EventInput]]) -> None:
    # It reads the model's storage (no second copy of an item table), so it can never fold with stale weights.
    config = EncoderConfig(embedding_dim=8, hidden_dim=8, recency_memory=True, item_category_vectors=True)
    model = noisy_model(histories, config)
    fast = NumpyEncoder(model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5).add_(0.1)
    rows = [h[:3] for h in histories]
    h, profiles = fast.fold(fast.initial_hidden(len(rows)), rows, [None] * len(rows))
    h_torch, p_torch = model.fold(model.initial_hidden(len(rows)), rows, [None] * len(rows))
    assert float(np.abs(h - h_torch.numpy()).max()) <= TOLERANCE
    assert float(np.abs(profiles - p_torch.numpy()).max()) <= TOLERANCE


def test_weights_other_than_float32_on_the_cpu_are_refused(histories: list[list[EventInput]]) -> None:
    model = noisy_model(histories, EncoderConfig(embedding_dim=8, hidden_dim=8)).double()
    with pytest.raises(ModelError, match="float32"):
        NumpyEncoder(model)


def test_a_parameter_the_numpy_step_does_not_read_is_refused(histories: list[list[EventInput]]) -> None:
    # A new part of the encoder must be added to the numpy step too, or the worker's profiles would drift.
    model = noisy_model(histories, EncoderConfig(embedding_dim=8, hidden_dim=8))
    model.extra_scale = nn.Parameter(torch.ones(()))
    with pytest.raises(ModelError, match="extra_scale"):
        NumpyEncoder(model)


def test_an_encoder_setting_the_numpy_step_does_not_know_is_refused(
    histories: list[list[EventInput]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if EncoderConfig had gained `recency_memory` after the numpy step was written.
    model = noisy_model(histories, EncoderConfig(embedding_dim=8, hidden_dim=8))
    monkeypatch.setattr(numpy_step, "_KNOWN_CONFIG", numpy_step._KNOWN_CONFIG - {"recency_memory"})
    with pytest.raises(ModelError, match="recency_memory"):
        NumpyEncoder(model)
