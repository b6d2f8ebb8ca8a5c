"""StateSpec validation."""

from __future__ import annotations

import dataclasses

import pytest

from state.errors import StateSpecError
from state.spec import StateSpec, WindowSpec


def test_defaults() -> None:
    spec = StateSpec()
    assert [w.name for w in spec.count_windows] == ["1h", "24h", "7d"]
    assert spec.spend_window.name == "30d"
    assert spec.hidden_dtype == "float32"
    assert spec.allowed_lateness_ms == 3_600_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"recent_window": 0},
        {"dedupe_ids": -1},
        {"top_categories_kept": 2, "top_categories": 3},
        {"top_terms_kept": 2, "top_terms": 3},
        {"hidden_dtype": "bfloat16"},
        {"count_windows": (WindowSpec("x", 1_000, 300),)},
        {"count_windows": (WindowSpec("x", 1_000, 100), WindowSpec("x", 2_000, 100))},
        {"spend_window": WindowSpec("1h", 3_600_000, 60_000)},
    ],
)
def test_invalid_specs_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(StateSpecError):
        StateSpec(**kwargs)  # type: ignore[arg-type]


def test_equal_specs_hash_alike_and_a_changed_field_changes_the_hash() -> None:
    # Specs key per-event caches (the aggregators of a spec); the hash is computed once, from every field.
    assert hash(StateSpec()) == hash(StateSpec()) and StateSpec() == StateSpec()
    changed = dataclasses.replace(StateSpec(), top_terms=3)
    assert changed != StateSpec() and hash(changed) != hash(StateSpec())
