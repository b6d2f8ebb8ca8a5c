"""Item vectors with their category's part: what the vocabulary records, the composed vectors, parity, checkpoints."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import EncoderConfig, ProfileEncoder
from models.features import EventInput, FeatureSpace, make_event_input, stable_hash64
from tests.models.factories import fold_in_random_chunks, random_history

TOLERANCE = 1e-5
CONFIG = EncoderConfig(embedding_dim=12, hidden_dim=10, recency_memory=True, item_category_vectors=True)


def _browse(item: str, category: str | None, ts_ms: int = 1_700_000_000_000) -> EventInput:
    return make_event_input("browse", ts_ms, item_id=item, category=category)


def test_fit_records_each_items_most_frequent_category() -> None:
    history = [_browse("a", "x"), _browse("a", "y"), _browse("a", "y"), _browse("b", None), _browse("c", "x")]
    space = FeatureSpace.fit([history], item_categories=True)
    by_item = dict(zip(space.item_hashes, space.item_category_hashes or (), strict=True))
    assert by_item[stable_hash64("a")] == stable_hash64("y")
    assert by_item[stable_hash64("b")] == 0  # never seen with a category
    rows = space.item_category_indices()
    assert rows[0] == 0 and rows[space.item_index(stable_hash64("b"))] == 0
    assert rows[space.item_index(stable_hash64("c"))] == space.category_index(stable_hash64("x"))
    assert FeatureSpace.from_json(space.to_json()) == space


def test_a_vocabulary_written_before_the_option_loads_without_item_categories() -> None:
    old = FeatureSpace.fit([[_browse("a", "x")]], item_categories=True).to_json()
    del old["item_category_hashes"]
    space = FeatureSpace.from_json(old)
    assert space.item_category_hashes is None
    assert not space.item_category_indices().any()


def test_item_vectors_add_the_category_part_only_where_an_item_has_one() -> None:
    history = [_browse("a", "x"), _browse("b", None), _browse("c", "x")]
    torch.manual_seed(0)
    model = ProfileEncoder(CONFIG, FeatureSpace.fit([history], item_categories=True)).eval()
    space = model.features
    vectors = model.item_vectors()
    own = model.item_embedding.weight.detach()
    category = model.category_embedding.weight.detach()[space.category_index(stable_hash64("x"))]
    a, b, c = (space.item_index(stable_hash64(i)) for i in "abc")
    assert torch.equal(vectors[a], own[a] + category) and torch.equal(vectors[c], own[c] + category)
    assert torch.equal(vectors[b], own[b])
    assert torch.equal(vectors[0], own[0])  # the unknown item


def test_fold_equals_encode_with_category_vectors() -> None:
    rnd = random.Random(3)
    histories = [random_history(rnd, n) for n in (1, 5, 23, 40)]
    torch.manual_seed(1)
    model = ProfileEncoder(CONFIG, FeatureSpace.fit(histories[:2], item_categories=True)).eval()
    assert model.item_category is not None and bool(model.item_category.any())
    expected = model.encode_batch(histories)
    h = fold_in_random_chunks(model, histories, rnd, max_chunk=6)
    assert (model.profile(h) - expected).abs().max().item() <= TOLERANCE


def test_checkpoint_round_trip_keeps_the_composed_vectors(tmp_path: Path) -> None:
    rnd = random.Random(4)
    histories = [random_history(rnd, 30) for _ in range(3)]
    torch.manual_seed(2)
    model = ProfileEncoder(CONFIG, FeatureSpace.fit(histories, item_categories=True)).eval()
    model.trained = True
    save_checkpoint(model, tmp_path / "m", training_fingerprint="f" * 64, metrics={})
    loaded, _ = load_checkpoint(tmp_path / "m")
    assert loaded.config.item_category_vectors
    assert torch.equal(loaded.item_vectors(), model.item_vectors())
    assert torch.equal(loaded.encode(histories[0]), model.encode(histories[0]))


def test_without_the_option_the_vocabulary_is_written_as_before() -> None:
    space = FeatureSpace.fit([[_browse("a", "x")]])
    assert space.item_category_hashes is None
    assert "item_category_hashes" not in space.to_json()  # readable by code that predates the field
