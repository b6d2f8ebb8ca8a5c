"""The exact index: the same top k as a full sort, exclusions never returned, and no query of another dimension."""

from __future__ import annotations

import numpy as np
import pytest

from streams.recommend.index import ExactIndex


def _vectors(n: int = 500, dim: int = 8, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


@pytest.mark.parametrize("k", [1, 5, 20, 499, 500])
def test_top_k_equals_a_full_sort(k: int) -> None:
    vectors = _vectors()
    query = np.random.default_rng(2).standard_normal(8).astype(np.float32)
    rows, scores = ExactIndex(vectors).search(query, k)
    full = np.argsort(-(vectors @ query), kind="stable")[:k]
    assert rows.tolist() == full.tolist()
    np.testing.assert_allclose(scores, (vectors @ query)[full], rtol=1e-6)
    assert np.all(np.diff(scores) <= 0)


def test_excluded_rows_are_never_returned_and_k_is_still_met() -> None:
    vectors = _vectors()
    query = vectors[10]
    index = ExactIndex(vectors)
    best = index.search(query, 30)[0]
    excluded = best[:25].tolist() + best[:3].tolist()  # duplicates are allowed
    rows, _ = index.search(query, 30, excluded)
    assert not set(rows.tolist()) & set(excluded)
    assert len(rows) == 30
    assert rows[:5].tolist() == best[25:30].tolist()


def test_fewer_than_k_only_when_fewer_items_remain() -> None:
    index = ExactIndex(_vectors(n=6))
    rows, _ = index.search(np.ones(8, dtype=np.float32), 10, [0, 1, 2])
    assert sorted(rows.tolist()) == [3, 4, 5]
    assert len(index.search(np.ones(8, dtype=np.float32), 10, range(6))[0]) == 0


def test_a_query_of_another_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="dimensional"):
        ExactIndex(_vectors(dim=8)).search(np.ones(16, dtype=np.float32), 5)


@pytest.mark.parametrize("bad", [np.zeros((0, 4), dtype=np.float32), np.zeros(4, dtype=np.float32)])
def test_an_empty_or_flat_matrix_is_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ExactIndex(bad)


def test_k_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="k must"):
        ExactIndex(_vectors()).search(np.ones(8, dtype=np.float32), 0)


def test_values_near_the_float32_limit_are_ranked_not_dropped() -> None:
    """Both contracts take any finite float32: a float32 sum of such products overflows (inf, or NaN with mixed
    signs), and those items vanished from the answer."""
    top = float(np.finfo(np.float32).max)
    vectors = np.array([[top, top, top, top], [top, -top, top, -top], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
    index = ExactIndex(vectors)
    rows, scores = index.search([0.5, 0.5, 0.5, 0.5], k=3)
    assert rows.tolist() == [0, 2, 1]
    assert np.isfinite(scores).all()
    rows, _ = index.search([top, top, top, top], k=3)  # a profile at the limit too
    assert rows.tolist() == [0, 2, 1]
