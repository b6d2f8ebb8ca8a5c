"""bench/ann.py: a seeded generator, and a measurement that gives exact search recall 1 and a broken index less."""

from __future__ import annotations

import numpy as np

from bench.ann import Row, Search, candidates, item_vectors, measure, queries, table
from streams.recommend.index import ExactIndex


def test_the_generator_is_seeded_and_shaped_like_item_vectors() -> None:
    a, b = item_vectors(300, 8, seed=1), item_vectors(300, 8, seed=1)
    assert a.dtype == np.float32 and a.shape == (300, 8)
    np.testing.assert_array_equal(a, b)
    assert np.std(np.linalg.norm(a, axis=1)) > 0.05  # norms vary: they carry popularity
    qs = queries(a, 10, seed=1)
    np.testing.assert_allclose(np.linalg.norm(qs, axis=1), 1.0, rtol=1e-5)


def test_exact_search_has_recall_one_and_a_wrong_index_does_not() -> None:
    vectors = item_vectors(400, 8, seed=2)
    qs = queries(vectors, 30, seed=2)
    exact = ExactIndex(vectors)
    truth = np.stack([exact.search(q, 10)[0] for q in qs])
    [(name, build)] = candidates(vectors, ("exact",))
    assert measure(name, build, qs, truth, 10).recall == 1.0

    def reversed_index() -> Search:
        return lambda q, k: exact.search(-q, k)[0]

    assert measure("worst", reversed_index, qs, truth, 10).recall < 0.2


def test_the_table_has_a_row_per_candidate() -> None:
    text = table([Row("a", 0.5, 0.99, 100.0, 200.0), Row("b", 1.0, 1.0, 10.0, 20.0)], 1000, 8, 10)
    assert text.count("\n") == 3 and "| a | 0.50 | 0.9900 | 100 | 200 |" in text
