"""Feature hashing, vocabularies, buckets and tensorisation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import subprocess
import sys

import pytest
import torch

from models.errors import FeatureError
from models.features import (
    OOV_INDEX,
    EventInput,
    EventTensors,
    FeatureSpace,
    log_bucket,
    make_event_input,
    pad_codes,
    query_term_hashes,
    stable_hash64,
)
from tests.models.factories import random_history


def test_stable_hash64_is_pinned_blake2b_signed_int64() -> None:
    # Pinned value: a change here breaks every stored window and checkpoint vocabulary.
    assert stable_hash64("item-1") == 8406168460641299428
    digest = hashlib.blake2b(b"\xc3\xbc", digest_size=8).digest()
    assert stable_hash64("ü") == int.from_bytes(digest, "little", signed=True)
    values = [stable_hash64(f"x{i}") for i in range(2000)]
    assert all(-(2**63) <= v < 2**63 and v != 0 for v in values)
    assert any(v < 0 for v in values)  # signed, so it fits int64
    assert torch.tensor(values, dtype=torch.int64).tolist() == values


def test_query_terms_are_normalised_deduplicated_and_capped() -> None:
    fullwidth_berlin = "".join(chr(ord(c) + 0xFEE0) for c in "Berlin")  # NFKC folds it to "Berlin"
    assert query_term_hashes(fullwidth_berlin + "  Mitte, berlin!") == query_term_hashes("berlin mitte")
    assert query_term_hashes("berlin mitte") == (stable_hash64("berlin"), stable_hash64("mitte"))
    assert len(query_term_hashes(" ".join(f"w{i}" for i in range(20)), max_terms=8)) == 8
    assert query_term_hashes("  ,;  ") == ()


def test_make_event_input_hashes_fields_and_keeps_price_only_for_purchases() -> None:
    browse = make_event_input("browse", 5, item_id="a", category="c", price=9.0, quantity=3)
    assert browse == EventInput(type_code=0, ts_ms=5, item_hash=stable_hash64("a"), category_hash=stable_hash64("c"))
    purchase = make_event_input("purchase", 6, item_id="a", price=9.5, quantity=3)
    assert (purchase.type_code, purchase.price, purchase.quantity) == (2, 9.5, 3)
    search = make_event_input("search", 7, query="Spa")
    assert search.query_terms == (stable_hash64("spa"),) and not search.has_item
    with pytest.raises(FeatureError):
        make_event_input("click", 1)
    with pytest.raises(FeatureError):
        EventInput(type_code=3, ts_ms=1)


def test_log_bucket_is_exact_at_octave_boundaries() -> None:
    # per_octave=1: bucket = 1 + floor(log2(value + 1))
    assert [log_bucket(v, 1, 100) for v in (0, 1, 2, 3, 6, 7)] == [1, 2, 2, 3, 3, 4]
    assert log_bucket(-5, 2, 100) == 1
    assert log_bucket(10**30, 2, 10) == 9  # capped at num_buckets - 1


def test_fit_orders_by_count_and_maps_unknown_to_fallback() -> None:
    a, b, c = (make_event_input("browse", i, item_id=n, category="k") for i, n in enumerate("abc"))
    b2 = make_event_input("purchase", 9, item_id="b")
    space = FeatureSpace.fit([[a, b], [b2, c, a, b]], min_item_count=2)
    assert space.item_hashes == (stable_hash64("b"), stable_hash64("a"))  # b: 3, a: 2, c dropped
    assert space.num_items == 3
    assert space.item_index(stable_hash64("b")) == 1
    assert space.item_index(stable_hash64("c")) == OOV_INDEX
    assert space.item_index(stable_hash64("never-seen")) == OOV_INDEX
    assert space.category_index(stable_hash64("unknown")) == OOV_INDEX
    assert space.category_index(stable_hash64("k")) == 1


def test_tensorize_unknown_item_uses_fallback_and_masks_absent_fields() -> None:
    space = FeatureSpace.fit([[make_event_input("browse", 0, item_id="known")]], max_query_terms=4)
    events = [
        make_event_input("browse", 10_000, item_id="brand-new", category="new-cat"),
        make_event_input("search", 10_000, query="a b"),
        make_event_input("purchase", 10_000, item_id="known", price=12.5, quantity=30),
    ]
    x = space.tensorize(events, [None, 9_000, 10_000])
    assert x.item.tolist() == [OOV_INDEX, OOV_INDEX, 1]
    assert x.item_mask.tolist() == [1.0, 0.0, 1.0]
    assert x.category.tolist() == [OOV_INDEX, OOV_INDEX, OOV_INDEX]
    assert x.category_mask.tolist() == [1.0, 0.0, 0.0]
    assert x.query_terms.shape == (3, 4)
    assert (x.query_terms[1, :2] > 0).all() and (x.query_terms[1, 2:] == 0).all()
    assert x.gap.tolist() == [0, log_bucket(1000, 2, 72), 1]
    assert x.price.tolist()[:2] == [0, 0] and x.price.tolist()[2] > 0
    assert x.quantity.tolist() == [0, 0, 7]
    assert x.item_mask.dtype == torch.float32 and x.item.dtype == torch.int64


def test_tensorize_sequences_pads_and_uses_previous_event_gaps() -> None:
    space = FeatureSpace()
    seq = [make_event_input("browse", t, item_id="x") for t in (0, 1000, 1000)]
    x, lengths = space.tensorize_sequences([seq, seq[:1], []], prev_ts_ms=[None, -1000, None])
    assert lengths.tolist() == [3, 1, 0]
    assert x.gap.tolist() == [
        [0, log_bucket(1000, 2, 72), 1],
        [log_bucket(1000, 2, 72), 0, 0],
        [0, 0, 0],
    ]
    assert x.item_mask.tolist()[1] == [1.0, 0.0, 0.0]


def test_tensorize_sequences_equals_padding_each_sequences_codes() -> None:
    # The batched path (one code table, one scatter per field) must give the per-sequence path's tensors.
    rnd = random.Random(5)
    histories = [random_history(rnd, n) for n in (0, 1, 7, 3, 12, 0, 5)]
    space = FeatureSpace.fit(histories, min_item_count=1)
    previous = [None, 1_600_000_000_000, None, 1_700_000_000_000, None, 5, -3]
    x, lengths = space.tensorize_sequences(histories, previous)
    expected, expected_lengths = pad_codes(
        [space.sequence_codes(h, p) for h, p in zip(histories, previous, strict=True)], space.max_query_terms
    )
    assert torch.equal(lengths, expected_lengths)
    for field in dataclasses.fields(EventTensors):
        name = field.name
        got, want = getattr(x, name), getattr(expected, name)
        assert got.dtype == want.dtype and torch.equal(got, want), name


def test_feature_space_json_round_trip_and_validation() -> None:
    space = FeatureSpace.fit(
        [[make_event_input("browse", 0, item_id="a", category="c")]],
        item_ids={stable_hash64("a"): "a"},
        num_query_buckets=64,
    )
    data = json.loads(json.dumps(space.to_json()))
    assert FeatureSpace.from_json(data) == space
    assert FeatureSpace.from_json(data).item_ids == ("a",)
    with pytest.raises(FeatureError, match="format_version"):
        FeatureSpace.from_json({**data, "format_version": 99})
    with pytest.raises(FeatureError, match="unknown fields"):
        FeatureSpace.from_json({**data, "surprise": 1})
    with pytest.raises(FeatureError, match="item_hashes"):
        FeatureSpace.from_json({**data, "item_hashes": ["a"]})
    with pytest.raises(FeatureError, match="duplicate"):
        FeatureSpace.from_json({**data, "item_hashes": [5, 5]})


def test_event_hashing_does_not_import_torch() -> None:
    # Light commands (importers, producers) build EventInputs without paying for torch.
    code = "import sys, models.events; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
