"""Demo traffic: generated users with stable tastes, so their profiles mean something.

Each user prefers a few categories; most of their browsing, searching and buying happens there. The
generator is deterministic for a seed, which the benchmarks and tests rely on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from streams.contract.events import BrowseEvent, CommonFields, Event, PurchaseEvent, SearchEvent

CATEGORIES = (
    "books", "music", "garden", "kitchen", "outdoor", "toys", "games", "fashion",
    "shoes", "beauty", "sports", "cycling", "camping", "photo", "audio", "office",
)  # fmt: skip
SEARCH_WORDS = {c: (c, f"best {c}", f"cheap {c}", f"{c} gift", f"new {c}") for c in CATEGORIES}
ITEMS_PER_CATEGORY = 200
TYPE_WEIGHTS = (("browse", 0.7), ("search", 0.2), ("purchase", 0.1))


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A generated user: an id and the categories they favour."""

    user_id: str
    favourites: tuple[str, ...]


class DemoTraffic:
    """A reproducible stream of contract events over ``users`` generated users."""

    def __init__(self, users: int, *, seed: int = 7, start_ms: int = 1_767_225_600_000, step_ms: int = 1_000) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
        self.users = [
            DemoUser(f"user-{i:06d}", tuple(self.rng.sample(CATEGORIES, k=self.rng.randint(1, 3))))
            for i in range(users)
        ]
        self.clock_ms = start_ms
        self.step_ms = step_ms
        self._sequence = 0
        self._last_item: dict[str, str] = {}

    def _item(self, category: str) -> str:
        # Zipf-like popularity inside a category: low ranks are much more likely.
        rank = min(int(self.rng.paretovariate(1.2)), ITEMS_PER_CATEGORY) - 1
        return f"{category}-{rank:04d}"

    def next_event(self, ts_ms: int | None = None) -> Event:
        """The next event; ``ts_ms`` overrides the generator's own advancing clock (live traffic uses now)."""
        self._sequence += 1
        if ts_ms is None:
            self.clock_ms += self.rng.randint(0, self.step_ms)
            ts_ms = self.clock_ms
        user = (
            self.users[min(int(self.rng.paretovariate(0.8)), len(self.users)) - 1]
            if self.rng.random() < 0.3
            else self.rng.choice(self.users)
        )
        category = self.rng.choice(user.favourites) if self.rng.random() < 0.85 else self.rng.choice(CATEGORIES)
        kind = self.rng.choices([t for t, _ in TYPE_WEIGHTS], weights=[w for _, w in TYPE_WEIGHTS])[0]
        event_id = f"demo-{self._sequence:012d}-{self.rng.getrandbits(32):08x}"
        common: CommonFields = {"event_id": event_id, "user_id": user.user_id, "ts_ms": ts_ms, "session_id": None}
        if kind == "search":
            return SearchEvent(query=self.rng.choice(SEARCH_WORDS[category]), **common)
        item = self._last_item.get(user.user_id) if kind == "purchase" else None
        item = item or self._item(category)
        self._last_item[user.user_id] = item
        if kind == "browse":
            return BrowseEvent(item_id=item, category=item.split("-")[0], **common)
        return PurchaseEvent(
            item_id=item,
            category=item.split("-")[0],
            quantity=self.rng.randint(1, 3),
            price=round(self.rng.uniform(2, 200), 2),
            currency="EUR",
            **common,
        )

    def events(self, count: int) -> Iterator[Event]:
        """``count`` events in generator time."""
        for _ in range(count):
            yield self.next_event()
