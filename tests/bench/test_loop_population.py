"""The closed-loop simulation's users: seeded, tastes that are distributions, a shift that moves every
favourite, and clicks that follow taste and position."""

from __future__ import annotations

import numpy as np

from bench.closed_loop import recovery
from bench.loop_population import (
    ARMS,
    Catalogue,
    SimUser,
    click_probabilities,
    clicks,
    organic_item,
    population,
    shift_tastes,
)

CATALOGUE = Catalogue(categories=8, per_category=20)


def test_the_population_is_reproducible_and_split_across_the_arms() -> None:
    first = population(30, CATALOGUE, np.random.default_rng(3))
    again = population(30, CATALOGUE, np.random.default_rng(3))
    assert [u.user_id for u in first] == [u.user_id for u in again]
    assert all(np.array_equal(a.taste, b.taste) for a, b in zip(first, again, strict=True))
    assert [u.arm for u in first[:3]] == list(ARMS)
    for user in first:
        assert user.taste.shape == (8,) and np.isclose(user.taste.sum(), 1.0) and (user.taste >= 0).all()


def test_a_taste_shift_moves_every_users_favourite_category() -> None:
    users = population(50, CATALOGUE, np.random.default_rng(4))
    before = [int(np.argmax(u.taste)) for u in users]
    sorted_before = [np.sort(u.taste) for u in users]
    shift_tastes(users, np.random.default_rng(5))
    assert all(int(np.argmax(u.taste)) != b for u, b in zip(users, before, strict=True))
    assert all(np.allclose(np.sort(u.taste), s) for u, s in zip(users, sorted_before, strict=True))


def test_organic_browsing_follows_the_taste_and_clicks_follow_taste_and_position() -> None:
    taste = np.zeros(8)
    taste[2] = 1.0
    user = SimUser("u", "profile", taste)
    rng = np.random.default_rng(6)
    assert {CATALOGUE.category_of(organic_item(user, CATALOGUE, rng)) for _ in range(50)} == {2}
    liked = [CATALOGUE.item(2, r) for r in range(5)]
    other = [CATALOGUE.item(3, r) for r in range(5)]
    probabilities = click_probabilities(user, liked, CATALOGUE)
    assert (np.diff(probabilities) < 0).all()  # position bias
    assert (click_probabilities(user, other, CATALOGUE) == 0).all()
    assert clicks(user, other, CATALOGUE, rng) == []
    assert sum(len(clicks(user, liked, CATALOGUE, rng)) for _ in range(100)) > 100


def test_recovery_counts_rounds_until_the_ctr_is_back_to_nine_tenths_of_before() -> None:
    assert recovery([0.5, 0.5, 0.5, 0.1, 0.3, 0.46], shift_at=3) == 2
    assert recovery([0.5, 0.5, 0.5, 0.1, 0.2], shift_at=3) is None
