"""Encoder: step/fold and encode agree, profiles are unit vectors, unknown inputs never raise."""

from __future__ import annotations

import random

import pytest
import torch

from models.encoder import FOLD_STEP_LIMIT, EncoderConfig, ProfileEncoder
from models.features import EventInput, FeatureSpace, make_event_input
from tests.models.factories import fold_in_random_chunks, noisy_model, random_history

TOLERANCE = 1e-5


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


def _model(histories: list[list[EventInput]], seed: int = 0) -> ProfileEncoder:
    return noisy_model(histories, EncoderConfig(embedding_dim=16, hidden_dim=24), seed)


@pytest.fixture(scope="module")
def histories() -> list[list[EventInput]]:
    rnd = random.Random(7)
    lengths = list(range(1, 31)) + [rnd.randint(1, 30) for _ in range(10)]
    rnd.shuffle(lengths)
    return [random_history(rnd, n) for n in lengths]


def test_fold_one_event_at_a_time_matches_encode(histories: list[list[EventInput]]) -> None:
    model = _model(histories)
    expected = model.encode_batch(histories)  # [B, D]
    batch = len(histories)
    h = model.initial_hidden(batch)
    last_ts: list[int | None] = [None] * batch
    profiles = torch.zeros_like(expected)
    for k in range(max(len(s) for s in histories)):
        users = [b for b in range(batch) if len(histories[b]) > k]
        h_sub, p_sub = model.fold(h[users], [[histories[b][k]] for b in users], [last_ts[b] for b in users])
        h[users] = h_sub
        profiles[users] = p_sub
        for b in users:
            last_ts[b] = histories[b][k].ts_ms
    assert (profiles - expected).abs().max().item() <= TOLERANCE
    single = torch.stack([model.encode(s) for s in histories])
    assert (single - expected).abs().max().item() <= TOLERANCE


def test_fold_with_events_split_over_several_calls_matches_encode(histories: list[list[EventInput]]) -> None:
    model = _model(histories, seed=1)
    rnd = random.Random(3)
    expected_h, expected = model.encode_batch_state(histories)  # [B, H], [B, D]
    h = fold_in_random_chunks(model, histories, rnd, max_chunk=7)
    assert (h - expected_h).abs().max().item() <= TOLERANCE
    assert (model.profile(h) - expected).abs().max().item() <= TOLERANCE
    # The whole history in one fold call gives the same too.
    _, p_all = model.fold(model.initial_hidden(len(histories)), histories, [None] * len(histories))
    assert (p_all - expected).abs().max().item() <= TOLERANCE


def test_fold_steps_short_rows_per_position_and_runs_long_rows_as_one_batch(
    histories: list[list[EventInput]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(histories)
    rows = [h[: 1 + i % 20] for i, h in enumerate(histories)]  # short rows and long ones of several lengths
    lengths = [len(r) for r in rows]
    assert min(lengths) <= FOLD_STEP_LIMIT < max(lengths)
    step_sizes: list[int] = []
    run_sizes: list[tuple[int, ...]] = []
    original_step, original_run = model.step, model.run

    def counting_step(h: torch.Tensor, x: object) -> torch.Tensor:
        step_sizes.append(h.shape[0])
        return original_step(h, x)  # type: ignore[arg-type]

    def counting_run(x: object, h0: torch.Tensor | None = None, **kwargs: bool) -> torch.Tensor:
        out = original_run(x, h0, **kwargs)  # type: ignore[arg-type]
        run_sizes.append(tuple(out.shape[:2]))
        return out

    monkeypatch.setattr(model, "step", counting_step)
    monkeypatch.setattr(model, "run", counting_run)
    _, profiles = model.fold(model.initial_hidden(len(rows)), rows, [None] * len(rows))
    short = [n for n in lengths if n <= FOLD_STEP_LIMIT]
    assert step_sizes == [sum(n > k for n in short) for k in range(max(short))]
    long = sorted(n for n in lengths if n > FOLD_STEP_LIMIT)
    # One padded run per group of lengths within a factor of two, padded to the group's longest row.
    expected: dict[int, tuple[int, int]] = {}
    for n in long:
        size, width = expected.get((n - 1).bit_length(), (0, 0))
        expected[(n - 1).bit_length()] = (size + 1, max(width, n))
    assert sorted(run_sizes) == sorted(expected.values())
    monkeypatch.undo()
    assert torch.allclose(profiles, model.encode_batch(rows), atol=1e-5)


def test_profiles_are_unit_float32_in_item_space(histories: list[list[EventInput]]) -> None:
    model = _model(histories)
    h, profiles = model.fold(model.initial_hidden(len(histories)), histories, [None] * len(histories))
    assert h.dtype == profiles.dtype == torch.float32
    assert profiles.shape == (len(histories), 16) and h.shape == (len(histories), 24)
    assert torch.allclose(profiles.norm(dim=1), torch.ones(len(histories)), atol=1e-6)
    items = model.item_vectors()
    assert items.shape == (model.features.num_items, 16)
    assert (profiles @ items.T).shape == (len(histories), model.features.num_items)


def test_unknown_items_and_categories_at_serving_never_raise(histories: list[list[EventInput]]) -> None:
    model = _model(histories)
    unseen = [
        make_event_input("browse", 1, item_id="never-seen", category="never-seen-either"),
        make_event_input("purchase", 2, item_id="also-new", price=1e12, quantity=10**6),
        make_event_input("search", 3, query="ünïcödé " + _fullwidth("QUERY")),
    ]
    _, profiles = model.fold(model.initial_hidden(1), [unseen], [None])
    assert torch.isfinite(profiles).all()
    # Two different unknown items fall back to the same index, so they give the same profile.
    other = [make_event_input("browse", 1, item_id="another-new", category="new-cat-2"), *unseen[1:]]
    assert torch.equal(model.encode(other), model.encode(unseen))
    # An untrained model with an empty vocabulary folds anything.
    empty = ProfileEncoder(EncoderConfig(embedding_dim=8, hidden_dim=8), FeatureSpace()).eval()
    _, p = empty.fold(empty.initial_hidden(2), [histories[0], histories[1]], [None, 5])
    assert torch.isfinite(p).all()


def test_fold_rejects_malformed_calls(histories: list[list[EventInput]]) -> None:
    model = _model(histories)
    with pytest.raises(ValueError, match="at least one"):
        model.fold(model.initial_hidden(2), [histories[0], []], [None, None])
    with pytest.raises(ValueError, match="h0 must be"):
        model.fold(model.initial_hidden(3), [histories[0]], [None])
    with pytest.raises(ValueError, match="float32"):
        model.fold(model.initial_hidden(1).double(), [histories[0]], [None])
    with pytest.raises(ValueError, match="previous timestamps"):
        model.fold(model.initial_hidden(1), [histories[0]], [None, None])


def test_empty_history_encodes_to_the_initial_profile(histories: list[list[EventInput]]) -> None:
    model = _model(histories)
    profiles = model.encode_batch([[], histories[0]])
    assert torch.equal(profiles[0], model.initial_profile())
    assert model.encode_batch([]).shape == (0, 16)


def test_encoder_config_round_trip_and_validation() -> None:
    config = EncoderConfig(embedding_dim=8, hidden_dim=12, tie_item_embeddings=False)
    assert EncoderConfig.from_dict(config.to_dict()) == config
    with pytest.raises(Exception, match="unknown"):
        EncoderConfig.from_dict({**config.to_dict(), "layers": 2})
    untied = ProfileEncoder(config, FeatureSpace.fit([[make_event_input("browse", 0, item_id="a")]]))
    assert not torch.equal(untied.item_vectors(), untied.item_embedding.weight.detach())
