"""The synthetic users of the closed-loop simulation (bench/closed_loop.py): hidden tastes, browsing, clicking.

Seeded and pure (a ``numpy.random.Generator`` in, data out), so a run is reproducible and the rules are tested
without a broker (tests/bench/test_loop_population.py).

- **Catalogue**: ``categories`` categories of ``per_category`` items, ``c07-012`` being item 12 of category 7.
  Inside a category, item popularity is Zipf-like (rank r drawn with weight 1 / (r + 1) ** 1.1).
- **Taste**: each user's hidden taste is a distribution over categories drawn from a symmetric Dirichlet with
  ``TASTE_ALPHA`` = 0.15: most users care for one to three categories and little for the rest.
- **Organic browsing**: a category drawn from the taste, then an item of it by popularity; one search in five
  rounds names the category (``"category 7"``).
- **Clicks**: shown a ranked list, the user considers each item independently and clicks the item at position
  p (0-based) with probability ``CLICK_SCALE * taste[category] * POSITION_DECAY ** p`` (a position-biased
  cascade-free model: a list of items of the user's favourite category is clicked often, a random list rarely).
  A click is followed by a purchase with probability ``PURCHASE_AFTER_CLICK``.
- **Taste shift**: every user's taste is permuted over the categories by one random derangement drawn per
  user, so each category's weight moves to another category: the user's favourites become other categories,
  with the same concentration as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

TASTE_ALPHA: Final = 0.15
CLICK_SCALE: Final = 0.6
POSITION_DECAY: Final = 0.85
PURCHASE_AFTER_CLICK: Final = 0.15
ZIPF_EXPONENT: Final = 1.1
ARMS: Final[tuple[str, ...]] = ("profile", "popular", "item_knn")
"""The strategies compared; user i is in arm ``ARMS[i % 3]`` for the whole run."""


@dataclass(frozen=True)
class Catalogue:
    """Item ids by category and the popularity of items inside a category."""

    categories: int
    per_category: int

    def item(self, category: int, rank: int) -> str:
        """The id of item ``rank`` of ``category``."""
        return f"c{category:02d}-{rank:03d}"

    def category_of(self, item_id: str) -> int:
        """The category of an item id of this catalogue."""
        return int(item_id[1:3])

    def all_items(self) -> list[str]:
        """Every item id, category by category."""
        return [self.item(c, r) for c in range(self.categories) for r in range(self.per_category)]

    def rank_weights(self) -> npt.NDArray[np.float64]:
        """Zipf-like popularity of ranks inside a category (sums to 1)."""
        weights = np.power(np.arange(1, self.per_category + 1, dtype=np.float64), -ZIPF_EXPONENT)
        return np.asarray(weights / weights.sum(), dtype=np.float64)


@dataclass
class SimUser:
    """One synthetic user: an id, the strategy arm, and the hidden taste over categories."""

    user_id: str
    arm: str
    taste: npt.NDArray[np.float64]


def population(users: int, catalogue: Catalogue, rng: np.random.Generator, prefix: str = "sim") -> list[SimUser]:
    """``users`` users with Dirichlet tastes, assigned to the arms in turn."""
    tastes = rng.dirichlet(np.full(catalogue.categories, TASTE_ALPHA), size=users)
    return [SimUser(f"{prefix}-{i:05d}", ARMS[i % len(ARMS)], tastes[i]) for i in range(users)]


def shift_tastes(users: list[SimUser], rng: np.random.Generator) -> None:
    """Move every user's taste to other categories (a random derangement per user)."""
    for user in users:
        size = len(user.taste)
        while True:
            perm = rng.permutation(size)
            if not np.any(perm == np.arange(size)):
                break
        user.taste = user.taste[perm]


def organic_item(user: SimUser, catalogue: Catalogue, rng: np.random.Generator) -> str:
    """An item the user browses of their own accord: a category from the taste, an item by popularity."""
    category = int(rng.choice(catalogue.categories, p=user.taste))
    return catalogue.item(category, int(rng.choice(catalogue.per_category, p=catalogue.rank_weights())))


def click_probabilities(user: SimUser, shown: list[str], catalogue: Catalogue) -> npt.NDArray[np.float64]:
    """The chance the user clicks each shown item, by its position and the user's taste for its category."""
    taste = np.asarray([user.taste[catalogue.category_of(item)] for item in shown], dtype=np.float64)
    probabilities: npt.NDArray[np.float64] = np.minimum(1.0, CLICK_SCALE * taste) * POSITION_DECAY ** np.arange(
        len(shown)
    )
    return probabilities


def clicks(user: SimUser, shown: list[str], catalogue: Catalogue, rng: np.random.Generator) -> list[str]:
    """The items of ``shown`` the user clicks (each considered independently)."""
    chosen = rng.random(len(shown)) < click_probabilities(user, shown, catalogue)
    return [item for item, hit in zip(shown, chosen.tolist(), strict=True) if hit]
