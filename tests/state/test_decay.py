"""Decayed weights: rescaling on event time, float32 storage, bounded capacity."""

from __future__ import annotations

import pytest

from state.decay import DecayedWeights, TopKind, decay_factor

HALF_LIFE = 1_000


def test_weight_halves_every_half_life() -> None:
    table = DecayedWeights(TopKind.CATEGORIES, HALF_LIFE, capacity=4)
    table.advance(10_000)
    table.add(1, 10_000)
    table.advance(12_000)
    assert table.weights[1] == 0.25
    table.add(1, 11_000)  # late: adds half
    assert table.weights[1] == 0.75
    assert table.top(1, 13_000) == [(1, 0.375)]
    assert table.reference_ms == 12_000  # reading does not move the state


def test_advance_never_goes_backwards() -> None:
    table = DecayedWeights(TopKind.CATEGORIES, HALF_LIFE, capacity=4, reference_ms=5_000, weights={1: 1.0})
    table.advance(4_000)
    assert table.weights == {1: 1.0} and table.reference_ms == 5_000


def test_underflowed_weights_are_dropped() -> None:
    table = DecayedWeights(TopKind.SEARCH_TERMS, HALF_LIFE, capacity=4, reference_ms=0, weights={1: 1.0, 2: 3e38})
    table.advance(200 * HALF_LIFE)
    assert list(table.weights) == [2]


def test_ranking_breaks_ties_by_hash() -> None:
    table = DecayedWeights(TopKind.SEARCH_TERMS, HALF_LIFE, capacity=4, reference_ms=0)
    for key in (9, -3, 5):
        table.add(key, 0)
    assert [k for k, _ in table.top(3, 0)] == [-3, 5, 9]


def test_zero_capacity_keeps_nothing() -> None:
    table = DecayedWeights(TopKind.CATEGORIES, HALF_LIFE, capacity=0)
    table.add(1, 0)
    assert table.weights == {}


def test_decay_factor() -> None:
    assert decay_factor(0, HALF_LIFE) == 1.0
    assert decay_factor(3 * HALF_LIFE, HALF_LIFE) == pytest.approx(0.125)
